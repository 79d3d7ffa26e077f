package proxy

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// maxFailures is how many failed requests a proxy keeps for /debug/failures.
const maxFailures = 50

// Failure is one failed request or connection as the access log records
// it: a 4xx or 5xx answer, or any Envoy response flag. The dashboard lists
// the recent ones of every proxy.
type Failure struct {
	Time            time.Time `json:"time"`
	Inbound         bool      `json:"inbound"`
	Protocol        string    `json:"protocol"`
	Method          string    `json:"method,omitempty"`
	Authority       string    `json:"authority"`
	Path            string    `json:"path,omitempty"`
	Code            int       `json:"code"`
	Flags           string    `json:"flags"`
	Details         string    `json:"details,omitempty"`
	UpstreamCluster string    `json:"upstreamCluster,omitempty"`
	UpstreamHost    string    `json:"upstreamHost,omitempty"`
	DurationMS      float64   `json:"durationMs"`
	RequestID       string    `json:"requestId,omitempty"`
}

// failureLog is a ring of the last maxFailures failures, newest last. It is
// safe for concurrent use.
type failureLog struct {
	mu   sync.Mutex
	ring [maxFailures]Failure
	next int
	n    int
}

// failed reports whether r is a failure: a 4xx or 5xx, or a response flag.
func failed(r *record) bool {
	return r.code >= 400 || r.flags != 0
}

// add records r when it failed.
func (l *failureLog) add(r *record) {
	if !failed(r) {
		return
	}
	f := Failure{Time: r.start.UTC(), Inbound: r.inbound, Protocol: r.protocol, Method: r.method, Authority: r.authority, Path: r.path,
		Code: r.code, Flags: r.flags.String(), Details: r.details, UpstreamCluster: r.upstreamCluster, UpstreamHost: r.upstreamHost,
		DurationMS: float64(r.duration.Microseconds()) / 1000, RequestID: r.requestID}
	l.mu.Lock()
	l.ring[l.next] = f
	l.next = (l.next + 1) % maxFailures
	l.n = min(l.n+1, maxFailures)
	l.mu.Unlock()
}

// recent returns the kept failures, newest first.
func (l *failureLog) recent() []Failure {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Failure, 0, l.n)
	for i := 1; i <= l.n; i++ {
		out = append(out, l.ring[(l.next-i+maxFailures)%maxFailures])
	}
	return out
}

// serveFailures is GET /debug/failures: the recent failures as a JSON array.
func (p *Proxy) serveFailures(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(p.failures.recent())
}

package server

import (
	"cmp"
	"slices"
	"sync"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/bowline-mesh/bowline/internal/model"
)

// Short names of the xDS types, as istioctl proxy-status names its columns.
const (
	TypeCDS = "CDS"
	TypeLDS = "LDS"
	TypeEDS = "EDS"
	TypeRDS = "RDS"
	TypeSDS = "SDS"
)

// typeNames maps type URLs to short names.
var typeNames = map[string]string{
	resourcev3.ClusterType:  TypeCDS,
	resourcev3.ListenerType: TypeLDS,
	resourcev3.EndpointType: TypeEDS,
	resourcev3.RouteType:    TypeRDS,
	resourcev3.SecretType:   TypeSDS,
}

// shortType returns the short name of a type URL, or the URL itself.
func shortType(url string) string {
	if n, ok := typeNames[url]; ok {
		return n
	}
	return url
}

// TypeStatus is what one proxy was sent and acknowledged for one xDS type.
type TypeStatus struct {
	// Sent is the version of the last response sent.
	Sent string `json:"sent,omitempty"`
	// Nonce is the nonce of the last response sent.
	Nonce string `json:"nonce,omitempty"`
	// Acked is the last version the proxy accepted.
	Acked string `json:"acked,omitempty"`
	// NACK is the error text of the proxy's rejection of the last response; empty once it accepts one.
	NACK string `json:"nack,omitempty"`
	// NACKedVersion is the version the NACK rejected.
	NACKedVersion string `json:"nackedVersion,omitempty"`
	// SentAt is when the last response was sent.
	SentAt time.Time `json:"sentAt,omitzero"`
	// AckedAt is when the last ACK arrived.
	AckedAt time.Time `json:"ackedAt,omitzero"`
}

// ProxyStatus is one connected xDS stream as /debug/syncz shows it.
type ProxyStatus struct {
	ID             string                `json:"id"`
	Type           model.ProxyType       `json:"type"`
	Namespace      string                `json:"namespace"`
	Workload       string                `json:"workload,omitempty"`
	Labels         map[string]string     `json:"labels,omitempty"`
	StatsAddress   string                `json:"statsAddress,omitempty"`
	Generator      string                `json:"generator,omitempty"`
	Delta          bool                  `json:"delta"`
	ConnectedSince time.Time             `json:"connectedSince"`
	Types          map[string]TypeStatus `json:"types"`
}

// conn is one ADS stream after its first request.
type conn struct {
	proxy *model.Proxy
	delta bool
	since time.Time
	types map[string]*TypeStatus // by type URL
	// nonces maps a type URL and nonce of an unanswered response to its version.
	nonces map[string]map[string]string
}

// tracker records per stream what was sent and acknowledged. It is safe for
// concurrent use.
type tracker struct {
	now func() time.Time

	mu    sync.Mutex
	conns map[streamKey]*conn
}

func newTracker(now func() time.Time) *tracker {
	return &tracker{now: now, conns: map[streamKey]*conn{}}
}

// connect records a stream's proxy. It reports false if the stream was already known.
func (t *tracker) connect(stream streamKey, p *model.Proxy) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.conns[stream]; ok {
		return false
	}
	t.conns[stream] = &conn{proxy: p, delta: stream.delta, since: t.now(), types: map[string]*TypeStatus{}, nonces: map[string]map[string]string{}}
	return true
}

// proxy returns the proxy of a stream, or nil.
func (t *tracker) proxy(stream streamKey) *model.Proxy {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok := t.conns[stream]; ok {
		return c.proxy
	}
	return nil
}

// disconnect forgets a stream and returns its proxy (nil if it never identified itself).
func (t *tracker) disconnect(stream streamKey) *model.Proxy {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.conns[stream]
	if !ok {
		return nil
	}
	delete(t.conns, stream)
	return c.proxy
}

// sent records a response and returns the stream's proxy (nil if unknown).
func (t *tracker) sent(stream streamKey, typeURL, version, nonce string) *model.Proxy {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.conns[stream]
	if !ok {
		return nil
	}
	ts := c.typeStatus(typeURL)
	ts.Sent, ts.Nonce, ts.SentAt = version, nonce, t.now()
	if c.nonces[typeURL] == nil {
		c.nonces[typeURL] = map[string]string{}
	}
	c.nonces[typeURL][nonce] = version
	return c.proxy
}

// ackResult is what a request said about an earlier response.
type ackResult int

const (
	notAResponse ackResult = iota // first request, or a stale nonce
	acked
	nacked
)

// request records what a request says about the response with its nonce:
// an ACK if errText is empty, else a NACK. It returns the version the
// request refers to.
func (t *tracker) request(stream streamKey, typeURL, nonce, errText string) (ackResult, string) {
	if nonce == "" {
		return notAResponse, ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.conns[stream]
	if !ok {
		return notAResponse, ""
	}
	version, ok := c.nonces[typeURL][nonce]
	if !ok {
		return notAResponse, ""
	}
	// Responses before this one can no longer be answered.
	if nonce == c.typeStatus(typeURL).Nonce {
		clear(c.nonces[typeURL])
	} else {
		delete(c.nonces[typeURL], nonce)
	}
	ts := c.typeStatus(typeURL)
	if errText != "" {
		ts.NACK, ts.NACKedVersion = errText, version
		return nacked, version
	}
	ts.Acked, ts.AckedAt, ts.NACK, ts.NACKedVersion = version, t.now(), "", ""
	return acked, version
}

func (c *conn) typeStatus(typeURL string) *TypeStatus {
	ts, ok := c.types[typeURL]
	if !ok {
		ts = &TypeStatus{}
		c.types[typeURL] = ts
	}
	return ts
}

// routers returns the connected router proxies (gateways).
func (t *tracker) routers() []*model.Proxy {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*model.Proxy
	for _, c := range t.conns {
		if c.proxy.Type == model.Router {
			out = append(out, c.proxy)
		}
	}
	slices.SortFunc(out, func(a, b *model.Proxy) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// snapshot returns every stream's status, sorted by proxy id then connection time.
func (t *tracker) snapshot() []ProxyStatus {
	t.mu.Lock()
	out := make([]ProxyStatus, 0, len(t.conns))
	for _, c := range t.conns {
		ps := ProxyStatus{ID: c.proxy.ID, Type: c.proxy.Type, Namespace: c.proxy.Namespace, Workload: c.proxy.WorkloadName,
			Labels: c.proxy.Labels, StatsAddress: c.proxy.StatsAddress, Generator: c.proxy.Generator,
			Delta: c.delta, ConnectedSince: c.since, Types: make(map[string]TypeStatus, len(c.types))}
		for url, ts := range c.types {
			ps.Types[shortType(url)] = *ts
		}
		out = append(out, ps)
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b ProxyStatus) int {
		if a.ID != b.ID {
			if a.ID < b.ID {
				return -1
			}
			return 1
		}
		return a.ConnectedSince.Compare(b.ConnectedSince)
	})
	return out
}

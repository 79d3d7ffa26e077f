package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bowline-mesh/bowline/internal/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeProxy serves /stats/prometheus with counters the test sets, and
// /debug/failures with recent failures when it has some.
type fakeProxy struct {
	mu       sync.Mutex
	body     string
	failures string
}

func (f *fakeProxy) set(body string) {
	f.mu.Lock()
	f.body = body
	f.mu.Unlock()
}

func (f *fakeProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path == "/debug/failures" && f.failures != "" {
		fmt.Fprint(w, f.failures)
		return
	}
	if r.URL.Path != "/stats/prometheus" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprint(w, f.body)
}

// series renders one istio_requests_total series and its duration histogram
// with all of its requests in the bucket le.
func series(reporter, src, dst, svc, code, flags, security string, n int, le float64) string {
	labels := fmt.Sprintf(`reporter=%q,source_workload=%q,source_workload_namespace="default",source_app=%q,source_version="v1",destination_workload=%q,destination_workload_namespace="default",destination_app=%q,destination_version="v1",destination_service=%q,destination_service_name="x",destination_service_namespace="default",request_protocol="http",response_code=%q,grpc_response_status="",response_flags=%q,connection_security_policy=%q`,
		reporter, src, strings.TrimSuffix(src, "-v1"), dst, strings.TrimSuffix(dst, "-v1"), svc, code, flags, security)
	var b strings.Builder
	fmt.Fprintf(&b, "istio_requests_total{%s} %d\n", labels, n)
	for _, bound := range []float64{1, 5, 10, 50} {
		c := 0
		if bound >= le {
			c = n
		}
		fmt.Fprintf(&b, "istio_request_duration_milliseconds_bucket{%s,le=\"%g\"} %d\n", labels, bound, c)
	}
	fmt.Fprintf(&b, "istio_request_duration_milliseconds_bucket{%s,le=\"+Inf\"} %d\n", labels, n)
	fmt.Fprintf(&b, "istio_request_duration_milliseconds_sum{%s} 0\nistio_request_duration_milliseconds_count{%s} %d\n", labels, labels, n)
	return b.String()
}

const header = "# TYPE istio_requests_total counter\n# TYPE istio_request_duration_milliseconds histogram\n"

func TestViewFromScrapes(t *testing.T) {
	front, back := &fakeProxy{}, &fakeProxy{}
	fs, bs := httptest.NewServer(front), httptest.NewServer(back)
	defer fs.Close()
	defer bs.Close()
	addr := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }
	proxies := []Proxy{
		{ID: "sidecar~127.0.0.1~front-v1.default~default.svc.cluster.local", Name: "front-v1.default", Type: "sidecar", Namespace: "default", Workload: "front-v1",
			StatsAddress: addr(fs), Sync: map[string]SyncState{"CDS": {State: "SYNCED"}, "LDS": {State: "SYNCED"}}},
		{ID: "sidecar~127.0.0.1~back-v1.default~default.svc.cluster.local", Name: "back-v1.default", Type: "sidecar", Namespace: "default", Workload: "back-v1",
			StatsAddress: addr(bs), Sync: map[string]SyncState{"CDS": {State: "SYNCED"}, "LDS": {State: "NACK", NACK: "listener x: bad"}}},
	}
	now := time.Unix(1000, 0)
	d, err := New(Config{Proxies: func() []Proxy { return proxies }, Store: config.NewStore(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	const svc = "back.default.svc.cluster.local"
	// The front's proxy lists its last failures; the back's has none to
	// list (an older proxy answers 404).
	front.mu.Lock()
	front.failures = `[{"time":"1970-01-01T00:16:45Z","protocol":"HTTP/1.1","method":"GET","authority":"back:9080","path":"/b","code":503,"flags":"UH","upstreamCluster":"outbound|9080||back.default.svc.cluster.local","durationMs":0.2,"requestId":"r2"},
		{"time":"1970-01-01T00:16:41Z","protocol":"HTTP/1.1","method":"GET","authority":"back:9080","path":"/a","code":404,"flags":"-","durationMs":1.5,"requestId":"r1"}]`
	front.mu.Unlock()
	scrape := func(frontBody, backBody string) {
		front.set(header + frontBody)
		back.set(header + backBody)
		d.col.round(context.Background(), proxies, now)
		now = now.Add(10 * time.Second)
	}
	scrape(series("source", "front-v1", "back-v1", svc, "200", "-", "unknown", 100, 5),
		series("destination", "front-v1", "back-v1", svc, "200", "-", "mutual_tls", 100, 5))
	// In 10 s: 100 more that reached back (10 of them 503), and 20 that
	// the front's proxy failed itself (no healthy upstream).
	scrape(series("source", "front-v1", "back-v1", svc, "200", "-", "unknown", 190, 5)+
		series("source", "front-v1", "unknown", svc, "503", "UH", "unknown", 20, 1),
		series("destination", "front-v1", "back-v1", svc, "200", "-", "mutual_tls", 190, 5)+
			series("destination", "front-v1", "back-v1", svc, "503", "-", "mutual_tls", 10, 50))

	v := d.View(time.Minute)
	if v.WindowSeconds != 10 {
		t.Fatalf("window %v s, want 10", v.WindowSeconds)
	}
	edges := map[string]Edge{}
	for _, e := range v.Graph.Edges {
		edges[e.FromName+" -> "+e.ToName] = e
	}
	// front -> back: 100 reached back (10 failed there) + 20 UH at the source = 120 in 10 s.
	e, ok := edges["front-v1 -> back.default"]
	if !ok {
		t.Fatalf("no edge front-v1 -> back.default in %+v", v.Graph.Edges)
	}
	if e.Rate != 12 || e.ErrorPercent != 25 || e.Health != healthFailing {
		t.Errorf("front-v1 -> back.default: %.1f req/s, %.1f %% errors, %s; want 12 req/s, 25 %% (30 of 120), failing", e.Rate, e.ErrorPercent, e.Health)
	}
	// The service -> workload edge has the destination's report only.
	e = edges["back.default -> back-v1"]
	if e.Rate != 10 || e.ErrorPercent != 10 || e.Health != healthDegraded || e.MTLSPercent == nil || *e.MTLSPercent != 100 {
		t.Errorf("back.default -> back-v1: %+v; want 10 req/s, 10 %% errors, degraded, 100 %% mTLS", e)
	}
	// 90 of 100 took <= 5 ms, 10 <= 50 ms: p50 interpolates inside (1, 5], p99 inside (10, 50].
	if e.P50 == nil || *e.P50 <= 1 || *e.P50 > 5 || e.P99 == nil || *e.P99 <= 10 || *e.P99 > 50 {
		t.Errorf("back.default -> back-v1 latency p50 %v p99 %v", deref(e.P50), deref(e.P99))
	}

	// Failures: the UH ones from the source, the 503s from the destination.
	var got []string
	for _, f := range v.Failures {
		got = append(got, fmt.Sprintf("%s %s %s->%s (%s) %g by %s", f.Flags, f.Code, f.Source, f.Destination, f.Service, f.Requests, f.Reporter))
	}
	want := []string{
		"UH 503 front-v1.default->unknown (back.default.svc.cluster.local) 20 by source",
		"- 503 front-v1.default->back-v1.default (back.default.svc.cluster.local) 10 by destination",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("failures:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(v.Failures[0].Meaning, "no healthy upstream") {
		t.Errorf("UH means %q", v.Failures[0].Meaning)
	}

	// Recent failures: the proxies' own records, newest first, each named
	// by its proxy and its flags explained.
	if len(v.Recent) != 2 || v.Recent[0].RequestID != "r2" || v.Recent[0].Proxy != "front-v1.default" || v.Recent[0].Code != 503 ||
		!strings.Contains(v.Recent[0].Meaning, "no healthy upstream") || v.Recent[1].Path != "/a" || v.Recent[1].Meaning != "" {
		t.Errorf("recent failures: %+v", v.Recent)
	}

	// Sync state per workload: the worst of its proxy's types.
	for _, w := range v.Workloads {
		want := map[string]string{"front-v1": "SYNCED", "back-v1": "NACK"}[w.Name]
		if w.Sync != want {
			t.Errorf("workload %s sync %s, want %s", w.Name, w.Sync, want)
		}
	}
	for _, p := range v.Proxies {
		if p.Scrape != "ok" {
			t.Errorf("proxy %s scrape %q", p.Name, p.Scrape)
		}
	}

	// A restarted proxy's counters start again: no negative rates, the new
	// requests count.
	scrape(series("source", "front-v1", "back-v1", svc, "200", "-", "unknown", 5, 5),
		series("destination", "front-v1", "back-v1", svc, "200", "-", "mutual_tls", 195, 5)+
			series("destination", "front-v1", "back-v1", svc, "503", "-", "mutual_tls", 10, 50))
	v = d.View(10 * time.Second)
	for _, e := range v.Graph.Edges {
		if e.Rate < 0 {
			t.Errorf("edge %s -> %s has rate %v", e.FromName, e.ToName, e.Rate)
		}
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestQuantileAsPrometheus(t *testing.T) {
	inf := math.Inf(1)
	h := counts{bounds: []float64{1, 5, 10, inf}, buckets: []float64{0, 50, 100, 100}}
	for _, c := range []struct {
		q, want float64
	}{{0.5, 5}, {0.25, 3}, {0.75, 7.5}, {1, 10}} {
		if got, ok := quantile(c.q, h); !ok || got != c.want {
			t.Errorf("q%.2f = %v, want %v", c.q, got, c.want)
		}
	}
	// Ranks in the +Inf bucket (as Envoy's and client_golang's expositions
	// end) give the highest finite bound, never +Inf (which JSON cannot carry).
	for _, q := range []float64{0.99, 1} {
		if got, ok := quantile(q, counts{bounds: []float64{1, 5, inf}, buckets: []float64{10, 20, 100}}); !ok || got != 5 {
			t.Errorf("q%.2f beyond the last bucket = %v, %v, want 5", q, got, ok)
		}
	}
}

func TestServeMesh(t *testing.T) {
	store := config.NewStore()
	d, err := New(Config{Proxies: func() []Proxy { return nil }, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for p, h := range d.Handlers() {
		mux.Handle(p, h)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("GET /: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	resp, err = http.Get(srv.URL + "/dashboard/api/mesh")
	if err != nil {
		t.Fatal(err)
	}
	var v View
	err = json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	if err != nil || v.Graph.Nodes == nil || v.Proxies == nil {
		t.Errorf("GET /dashboard/api/mesh: %v %+v", err, v)
	}
	resp, err = http.Get(srv.URL + "/dashboard/api/mesh?window=0")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("window=0: %s, want 400", resp.Status)
	}
}

// tcpSeries renders the TCP metrics of one connection tuple: sent and
// received bytes, and opened connections.
func tcpSeries(reporter, src, dst, svc, security string, sent, received, opened int) string {
	labels := fmt.Sprintf(`reporter=%q,source_workload=%q,source_workload_namespace="default",source_app="x",source_version="v1",destination_workload=%q,destination_workload_namespace="default",destination_app="db",destination_version="v1",destination_service=%q,destination_service_name="db",destination_service_namespace="default",request_protocol="tcp",response_flags="-",connection_security_policy=%q`,
		reporter, src, dst, svc, security)
	return fmt.Sprintf("istio_tcp_sent_bytes_total{%s} %d\nistio_tcp_received_bytes_total{%s} %d\nistio_tcp_connections_opened_total{%s} %d\n",
		labels, sent, labels, received, labels, opened)
}

// TestTCPEdges: the TCP metrics make graph edges with bytes and connections
// per second, the mTLS share from the destination's report, and no error
// rate (healthy); they add no requests and no failures.
func TestTCPEdges(t *testing.T) {
	client, db := &fakeProxy{}, &fakeProxy{}
	cs, ds := httptest.NewServer(client), httptest.NewServer(db)
	defer cs.Close()
	defer ds.Close()
	addr := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }
	proxies := []Proxy{
		{ID: "sidecar~127.0.0.1~app-v1.default~default.svc.cluster.local", Name: "app-v1.default", Type: "sidecar", Namespace: "default", Workload: "app-v1", StatsAddress: addr(cs)},
		{ID: "sidecar~127.0.0.1~db-v1.default~default.svc.cluster.local", Name: "db-v1.default", Type: "sidecar", Namespace: "default", Workload: "db-v1", StatsAddress: addr(ds)},
	}
	now := time.Unix(1000, 0)
	d, err := New(Config{Proxies: func() []Proxy { return proxies }, Store: config.NewStore(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	const svc = "db.default.svc.cluster.local"
	const tcpHeader = "# TYPE istio_tcp_sent_bytes_total counter\n# TYPE istio_tcp_received_bytes_total counter\n# TYPE istio_tcp_connections_opened_total counter\n"
	for _, n := range []int{1, 11} {
		client.set(tcpHeader + tcpSeries("source", "app-v1", "db-v1", svc, "unknown", 400*n, 100*n, 2*n))
		db.set(tcpHeader + tcpSeries("destination", "app-v1", "db-v1", svc, "mutual_tls", 100*n, 400*n, 2*n))
		d.col.round(context.Background(), proxies, now)
		now = now.Add(10 * time.Second)
	}
	v := d.View(time.Minute)
	edges := map[string]Edge{}
	for _, e := range v.Graph.Edges {
		edges[e.FromName+" -> "+e.ToName] = e
	}
	for _, name := range []string{"app-v1 -> db.default", "db.default -> db-v1"} {
		e, ok := edges[name]
		// 10 s: 5000 bytes both ways, 20 connections, counted from the destination's report.
		if !ok || e.TCPBytesRate != 500 || e.TCPConnRate != 2 || e.Rate != 0 || e.Health != healthHealthy || e.MTLSPercent == nil || *e.MTLSPercent != 100 {
			t.Errorf("%s: %+v; want 500 B/s, 2 connections/s, no requests, healthy, 100 %% mTLS (edges %+v)", name, e, v.Graph.Edges)
		}
	}
	if len(v.Failures) != 0 {
		t.Errorf("TCP traffic made failures: %+v", v.Failures)
	}
}

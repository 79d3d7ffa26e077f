package proxy_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tracingtypev3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// zipkinSpan is the part of a Zipkin v2 JSON span the tests read.
type zipkinSpan struct {
	TraceID       string            `json:"traceId"`
	ID            string            `json:"id"`
	ParentID      string            `json:"parentId"`
	Name          string            `json:"name"`
	Kind          string            `json:"kind"`
	Tags          map[string]string `json:"tags"`
	LocalEndpoint struct {
		ServiceName string `json:"serviceName"`
	} `json:"localEndpoint"`
}

// zipkinCollector is a Zipkin v2 HTTP receiver.
type zipkinCollector struct {
	mu    sync.Mutex
	spans []zipkinSpan
	paths []string
}

func (z *zipkinCollector) handle(w http.ResponseWriter, r *http.Request) {
	var spans []zipkinSpan
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &spans); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	z.mu.Lock()
	z.spans = append(z.spans, spans...)
	z.paths = append(z.paths, r.URL.Path)
	z.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

func (z *zipkinCollector) snapshot() []zipkinSpan {
	z.mu.Lock()
	defer z.mu.Unlock()
	return append([]zipkinSpan(nil), z.spans...)
}

// tracingListener is an HCM with Zipkin tracing at randomPct percent.
func tracingListener(t *testing.T, name string, p int, rds string, randomPct float64) *listenerv3.Listener {
	t.Helper()
	zc := &tracev3.ZipkinConfig{CollectorEndpointVersion: tracev3.ZipkinConfig_HTTP_JSON, TraceId_128Bit: true,
		CollectorService: &corev3.HttpService{HttpUri: &corev3.HttpUri{Uri: "http://zipkin.local:9411/api/v2/spans",
			HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "zipkin"}}}}
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix:     name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads(), RouteConfigName: rds}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &routerv3.Router{})}}},
		Tracing: &hcmv3.HttpConnectionManager_Tracing{
			ClientSampling: &typev3.Percent{Value: 100}, OverallSampling: &typev3.Percent{Value: 100}, RandomSampling: &typev3.Percent{Value: randomPct},
			CustomTags: []*tracingtypev3.CustomTag{
				{Tag: "istio.canonical_service", Type: &tracingtypev3.CustomTag_Literal_{Literal: &tracingtypev3.CustomTag_Literal{Value: "test"}}},
				{Tag: "user", Type: &tracingtypev3.CustomTag_RequestHeader{RequestHeader: &tracingtypev3.CustomTag_Header{Name: "x-user", DefaultValue: "anonymous"}}},
			},
			Provider: &tracev3.Tracing_Http{Name: "envoy.tracers.zipkin", ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: anyOf(t, zc)}},
		},
	}
	return &listenerv3.Listener{
		Name:    name,
		Address: socketAddr("127.0.0.1", uint32(p)),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, hcm)}}}}},
	}
}

// TestTracing: an outbound HCM with Zipkin tracing continues W3C and B3
// contexts, samples new traces at random_sampling, reports CLIENT spans
// shaped like Envoy's to the collector cluster, and injects the span's
// context upstream.
func TestTracing(t *testing.T) {
	zc := &zipkinCollector{}
	collector := startBackend(t, "zipkin", zc.handle)
	type seen struct{ traceparent, b3trace, b3span, b3sampled, rid string }
	var mu sync.Mutex
	var last seen
	bk := startBackend(t, "app", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		last = seen{r.Header.Get("traceparent"), r.Header.Get("x-b3-traceid"), r.Header.Get("x-b3-spanid"), r.Header.Get("x-b3-sampled"), r.Header.Get("x-request-id")}
		mu.Unlock()
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	cp := startControlPlane(t, "127.0.0.1:0")
	p := freePort(t)
	push := func(pct float64) {
		route := routeTo("/", "app")
		route.Decorator = &routev3.Decorator{Operation: "app.default.svc.cluster.local:80/*"}
		cp.push(t, map[resource.Type][]types.Resource{
			resource.ListenerType: {tracingListener(t, "out", p, "r", pct)},
			resource.RouteType: {&routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "app", Domains: []string{"*"},
				Routes: []*routev3.Route{route}}}}},
			resource.ClusterType:  {edsCluster("app"), edsCluster("zipkin")},
			resource.EndpointType: {cla("app", bk.addr), cla("zipkin", collector.addr)},
		})
	}
	push(0)
	startProxy(t, cp.addr, false)
	addr := "127.0.0.1:" + itoa(p)
	client := &http.Client{}
	lastSeen := func() seen { mu.Lock(); defer mu.Unlock(); return last }

	// Not sampled (random 0, no context): no span, but the decision travels.
	resp, _ := get(t, client, addr, "app", "/plain", nil)
	resp.Body.Close()
	s := lastSeen()
	if !strings.HasSuffix(s.traceparent, "-00") || s.b3sampled != "0" || s.rid == "" {
		t.Errorf("unsampled request: upstream saw traceparent %q x-b3-sampled %q x-request-id %q, want flags 00, 0 and a generated id", s.traceparent, s.b3sampled, s.rid)
	}

	// A sampled W3C parent is continued.
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	resp, _ = get(t, client, addr, "app", "/w3c?q=1", map[string]string{"traceparent": "00-" + traceID + "-" + parentID + "-01", "x-request-id": "rid-1", "x-user": "jason"})
	resp.Body.Close()
	s = lastSeen()
	if s.rid != "rid-1" {
		t.Errorf("x-request-id upstream = %q, want the client's rid-1", s.rid)
	}
	var w3c zipkinSpan
	waitFor(t, "the W3C span", func() bool {
		for _, sp := range zc.snapshot() {
			if sp.TraceID == traceID {
				w3c = sp
				return true
			}
		}
		return false
	})
	if len(zc.snapshot()) != 1 {
		t.Errorf("collector got %d spans, want only the sampled request's: %+v", len(zc.snapshot()), zc.snapshot())
	}
	if w3c.ParentID != parentID || w3c.Kind != "CLIENT" || w3c.Name != "app.default.svc.cluster.local:80/*" || w3c.LocalEndpoint.ServiceName != "test.default" {
		t.Errorf("span = %+v, want CLIENT child of %s named app.default.svc.cluster.local:80/* from test.default", w3c, parentID)
	}
	if want := "00-" + traceID + "-" + w3c.ID + "-01"; s.traceparent != want {
		t.Errorf("upstream traceparent %q, want %q (the span's context)", s.traceparent, want)
	}
	if s.b3trace != traceID || s.b3span != w3c.ID || s.b3sampled != "1" {
		t.Errorf("upstream B3 %s/%s/%s, want %s/%s/1", s.b3trace, s.b3span, s.b3sampled, traceID, w3c.ID)
	}
	for k, want := range map[string]string{"component": "proxy", "http.method": "GET", "http.status_code": "200", "response_flags": "-",
		"upstream_cluster": "app", "guid:x-request-id": "rid-1", "http.url": "http://app/w3c?q=1", "istio.canonical_service": "test",
		"user": "jason", "node_id": nodeID} {
		if got := w3c.Tags[k]; got != want {
			t.Errorf("tag %s = %q, want %q", k, got, want)
		}
	}
	if zc.paths[0] != "/api/v2/spans" {
		t.Errorf("spans posted to %s", zc.paths[0])
	}

	// B3 multi headers are continued too; 5xx marks the span an error.
	const b3Trace, b3Parent = "463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312"
	resp, _ = get(t, client, addr, "app", "/fail", map[string]string{"x-b3-traceid": b3Trace, "x-b3-spanid": b3Parent, "x-b3-sampled": "1"})
	resp.Body.Close()
	var b3 zipkinSpan
	waitFor(t, "the B3 span", func() bool {
		for _, sp := range zc.snapshot() {
			if sp.TraceID == b3Trace {
				b3 = sp
				return true
			}
		}
		return false
	})
	if b3.ParentID != b3Parent || b3.Tags["http.status_code"] != "503" || b3.Tags["error"] != "true" || b3.Tags["user"] != "anonymous" {
		t.Errorf("B3 span = %+v", b3)
	}

	// random_sampling 100: a request without context starts a sampled trace.
	push(100)
	waitFor(t, "sampling applied", func() bool {
		resp, _ := get(t, client, addr, "app", "/new", nil)
		resp.Body.Close()
		return strings.HasSuffix(lastSeen().traceparent, "-01")
	})
	waitFor(t, "a root span", func() bool {
		for _, sp := range zc.snapshot() {
			if sp.ParentID == "" && sp.Tags["http.url"] == "http://app/new" {
				return true
			}
		}
		return false
	})
}

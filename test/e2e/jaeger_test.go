package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// jaegerTool is Jaeger v2 (the release's cmd/jaeger, on the OpenTelemetry
// collector), built from its Go module.
var jaegerTool = &goTool{name: "jaeger", module: "github.com/jaegertracing/jaeger", version: "v1.76.0", pkg: "./cmd/jaeger"}

// jaeger is a running Jaeger with in-memory storage, every listener on loopback.
type jaeger struct {
	otlpGRPC, otlpHTTP, zipkin, query int
}

func startJaeger(t *testing.T) *jaeger {
	t.Helper()
	bin := jaegerTool.binary(t)
	j := &jaeger{otlpGRPC: freePort(t), otlpHTTP: freePort(t), zipkin: freePort(t), query: freePort(t)}
	cfg := fmt.Sprintf(`service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp, zipkin]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    traces:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: 127.0.0.1:%d
    grpc:
      endpoint: 127.0.0.1:%d
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:%d
      http:
        endpoint: 127.0.0.1:%d
  zipkin:
    endpoint: 127.0.0.1:%d
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
`, j.query, freePort(t), j.otlpGRPC, j.otlpHTTP, j.zipkin)
	file := filepath.Join(t.TempDir(), "jaeger.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	runTool(t, "jaeger", "", fmt.Sprintf("http://127.0.0.1:%d/api/services", j.query), bin, "--config", "file:"+file)
	return j
}

// jaegerSpan and jaegerTrace are the parts of Jaeger's /api/traces JSON the test reads.
type jaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
	ProcessID string `json:"processID"`
}

func (s jaegerSpan) tag(k string) string {
	for _, t := range s.Tags {
		if t.Key == k {
			return fmt.Sprint(t.Value)
		}
	}
	return ""
}

func (s jaegerSpan) parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

type jaegerTrace struct {
	TraceID   string                                  `json:"traceID"`
	Spans     []jaegerSpan                            `json:"spans"`
	Processes map[string]struct{ ServiceName string } `json:"processes"`
}

// traceFor polls Jaeger for the trace whose spans carry x-request-id rid
// until it has want spans.
func (j *jaeger) traceFor(t *testing.T, rid string, want int) jaegerTrace {
	t.Helper()
	q := url.Values{"service": {"istio-ingressgateway.istio-system"}, "tags": {fmt.Sprintf(`{"guid:x-request-id":%q}`, rid)}, "limit": {"5"}}
	deadline := time.Now().Add(30 * time.Second)
	var last jaegerTrace
	for time.Now().Before(deadline) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/traces?%s", j.query, q.Encode()))
		if err == nil {
			var body struct{ Data []jaegerTrace }
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if len(body.Data) > 0 {
				// The gateway's span found the trace; fetch it whole.
				last = j.trace(t, body.Data[0].TraceID)
				if len(last.Spans) >= want {
					return last
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no trace with %d spans for x-request-id %s within 30s; last had %d spans", want, rid, len(last.Spans))
	return last
}

// count is how many traces carry x-request-id rid.
func (j *jaeger) count(t *testing.T, rid string) int {
	t.Helper()
	q := url.Values{"service": {"istio-ingressgateway.istio-system"}, "tags": {fmt.Sprintf(`{"guid:x-request-id":%q}`, rid)}, "limit": {"5"}}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/traces?%s", j.query, q.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Data []jaegerTrace }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return len(body.Data)
}

func (j *jaeger) trace(t *testing.T, id string) jaegerTrace {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/traces/%s", j.query, id))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Data []jaegerTrace }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.Data) == 0 {
		t.Fatalf("trace %s: %v", id, err)
	}
	return body.Data[0]
}

// hop is one span as the test checks it: "service kind operation".
func (tr jaegerTrace) hop(s jaegerSpan) string {
	return tr.Processes[s.ProcessID].ServiceName + " " + s.tag("span.kind") + " " + s.OperationName
}

// meshConfigFor routes the mesh's traces to Jaeger: OTLP/gRPC (provider
// otel) by default, and a zipkin provider for the Zipkin check.
func meshConfigFor(j *jaeger, provider string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
data:
  mesh: |
    defaultConfig:
      tracing:
        sampling: 100
    extensionProviders:
    - name: otel
      opentelemetry:
        service: jaeger.local
        port: %d
    - name: zipkin
      zipkin:
        service: jaeger.local
        port: %d
    defaultProviders:
      tracing: [%s]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: jaeger
  namespace: istio-system
spec:
  hosts: [jaeger.local]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports:
  - {number: %d, name: grpc-otlp, protocol: GRPC}
  - {number: %d, name: http-zipkin, protocol: HTTP}
  endpoints:
  - address: 127.0.0.1
`, j.otlpGRPC, j.zipkin, provider, j.otlpGRPC, j.zipkin)
}

// TestBookinfoTracesInJaeger: one /productpage request through `bowline up`
// Bookinfo is one trace in a real Jaeger, with the gateway, productpage,
// details, reviews and ratings hops linked parent to child across proxies
// and Envoy's and Istio's tags; then the same through the Zipkin receiver.
func TestBookinfoTracesInJaeger(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds binaries and Jaeger, runs processes")
	}
	bins := binaries(t)
	j := startJaeger(t)
	dir := bookinfoDir(t, bins)
	if err := os.WriteFile(filepath.Join(dir, "istio.yaml"), []byte(meshConfigFor(j, "otel")), 0o644); err != nil {
		t.Fatal(err)
	}
	m := startUp(t, filepath.Join(bins, "bowline"), dir)
	m.apply(t, "virtual-service-reviews-v3.yaml") // reviews v3 calls ratings
	m.eventually(t, "", 3, "reviews v3", func(p page) bool { return p.reviews == "reviews-v3" && p.stars == "red" })

	// gateway SERVER + CLIENT, then SERVER and CLIENT spans per sidecar hop.
	wantHops := []string{
		"istio-ingressgateway.istio-system server productpage.default.svc.cluster.local:9080/productpage",
		"istio-ingressgateway.istio-system client productpage.default.svc.cluster.local:9080/productpage",
		"productpage.default server productpage.default.svc.cluster.local:9080/*",
		"productpage.default client details.default.svc.cluster.local:9080/*",
		"details.default server details.default.svc.cluster.local:9080/*",
		"productpage.default client reviews.default.svc.cluster.local:9080/*",
		"reviews.default server reviews.default.svc.cluster.local:9080/*",
		"reviews.default client ratings.default.svc.cluster.local:9080/*",
		"ratings.default server ratings.default.svc.cluster.local:9080/*",
	}
	check := func(t *testing.T, rid string) jaegerTrace {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, m.ingress+"/productpage", nil)
		req.Header.Set("x-request-id", rid)
		resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /productpage: %v %v", resp, err)
		}
		// Read the page to its end: a client that hangs up first is a
		// downstream disconnect (flag DC) in every hop's span.
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		tr := j.traceFor(t, rid, len(wantHops))
		byID := map[string]jaegerSpan{}
		have := map[string]jaegerSpan{}
		for _, s := range tr.Spans {
			byID[s.SpanID] = s
			have[tr.hop(s)] = s
		}
		for _, h := range wantHops {
			if _, ok := have[h]; !ok {
				var got []string
				for _, s := range tr.Spans {
					got = append(got, tr.hop(s))
				}
				t.Fatalf("trace lacks hop %q; it has:\n  %s", h, strings.Join(got, "\n  "))
			}
		}
		// Each hop's parent is the one before it on the call path.
		parentOf := map[string]string{
			wantHops[1]: wantHops[0], wantHops[2]: wantHops[1], wantHops[3]: wantHops[2], wantHops[4]: wantHops[3],
			wantHops[5]: wantHops[2], wantHops[6]: wantHops[5], wantHops[7]: wantHops[6], wantHops[8]: wantHops[7],
		}
		for child, parent := range parentOf {
			if got := have[child].parent(); got != have[parent].SpanID {
				t.Errorf("parent of %q is %s (%s), want %q", child, got, tr.hop(byID[got]), parent)
			}
		}
		if p := have[wantHops[0]].parent(); p != "" {
			t.Errorf("the gateway's server span has parent %s, want a root", p)
		}
		for _, h := range wantHops {
			s := have[h]
			for k, want := range map[string]string{"component": "proxy", "http.status_code": "200", "response_flags": "-",
				"guid:x-request-id": rid, "http.method": "GET"} {
				if got := s.tag(k); got != want {
					t.Errorf("%s: tag %s = %q, want %q", h, k, got, want)
				}
			}
			svc := strings.Fields(h)[0]
			canonical, ns, _ := strings.Cut(svc, ".")
			if s.tag("istio.canonical_service") != canonical || s.tag("istio.namespace") != ns || s.tag("istio.mesh_id") != "cluster.local" {
				t.Errorf("%s: istio tags %s/%s/%s", h, s.tag("istio.canonical_service"), s.tag("istio.namespace"), s.tag("istio.mesh_id"))
			}
			if !strings.Contains(s.tag("node_id"), "~") || s.tag("upstream_cluster") == "" {
				t.Errorf("%s: node_id %q upstream_cluster %q", h, s.tag("node_id"), s.tag("upstream_cluster"))
			}
		}
		if got := have[wantHops[3]].tag("upstream_cluster"); got != "outbound|9080||details.default.svc.cluster.local" {
			t.Errorf("productpage -> details upstream_cluster %q", got)
		}
		return tr
	}

	t.Run("OTLP gRPC", func(t *testing.T) {
		check(t, "rid-otlp-1")
	})

	t.Run("Telemetry sampling 0: no spans", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(m.dir, "telemetry.yaml"), []byte(`apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: no-sampling
  namespace: istio-system
spec:
  tracing:
  - randomSamplingPercentage: 0
`), 0o644); err != nil {
			t.Fatal(err)
		}
		get := func(rid string, hdr map[string]string) {
			req, _ := http.NewRequest(http.MethodGet, m.ingress+"/productpage", nil)
			req.Header.Set("x-request-id", rid)
			for k, v := range hdr {
				req.Header.Set(k, v)
			}
			resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /productpage: %v %v", resp, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body) // to its end, as above
			resp.Body.Close()
		}
		// Each round: an unsampled request, then one the client samples
		// (traceparent flags 01, which every hop follows). Once the second's
		// trace is in Jaeger, the first's spans would be too.
		clean := 0
		for n := 0; clean < 3; n++ {
			if n > 50 {
				t.Fatal("requests without a trace context are still traced after the Telemetry set sampling to 0")
			}
			get(fmt.Sprintf("rid-zero-%d", n), nil)
			get(fmt.Sprintf("rid-forced-%d", n), map[string]string{"traceparent": fmt.Sprintf("00-%032x-%016x-01", n+1, n+1)})
			j.traceFor(t, fmt.Sprintf("rid-forced-%d", n), len(wantHops)-1) // the gateway span has a parent now
			if j.count(t, fmt.Sprintf("rid-zero-%d", n)) == 0 {
				clean++
			} else {
				clean = 0
			}
		}
		// Without the Telemetry, MeshConfig's 100% applies again.
		if err := os.Remove(filepath.Join(m.dir, "telemetry.yaml")); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for n := 0; ; n++ {
			rid := fmt.Sprintf("rid-back-%d", n)
			get(rid, nil)
			if j.count(t, rid) > 0 || func() bool { time.Sleep(300 * time.Millisecond); return j.count(t, rid) > 0 }() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("sampling not back to 100% 30s after the Telemetry was removed")
			}
		}
	})

	t.Run("Zipkin v2 JSON", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(m.dir, "istio.yaml"), []byte(meshConfigFor(j, "zipkin")+`---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: mesh-default
  namespace: istio-system
spec:
  tracing:
  - customTags:
      exporter:
        literal:
          value: zipkin
`), 0o644); err != nil {
			t.Fatal(err)
		}
		// Wait until every proxy reports through Zipkin: a trace whose
		// every span carries the new tag.
		deadline := time.Now().Add(30 * time.Second)
		for n := 0; ; n++ {
			tr := check(t, fmt.Sprintf("rid-zipkin-%d", n))
			all := true
			for _, s := range tr.Spans {
				all = all && s.tag("exporter") == "zipkin"
			}
			if all {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("spans not all reported through Zipkin 30s after the MeshConfig change")
			}
		}
	})
}

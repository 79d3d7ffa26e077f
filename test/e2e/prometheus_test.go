package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// prometheusTool is Prometheus (the server, cmd/prometheus) built from its
// Go module; remove_all_sd keeps file and static discovery only.
var prometheusTool = &goTool{name: "prometheus", module: "github.com/prometheus/prometheus", version: "v0.316.0",
	pkg: "./cmd/prometheus", tags: "remove_all_sd"}

// podsScrapeConfig is the `kubernetes-pods` job of the Prometheus that Istio
// installs as an addon (the Prometheus community chart's): keep the pods
// annotated prometheus.io/scrape, take the path and port from the other
// prometheus.io annotations, copy the pod labels, namespace and name onto
// the series, drop pods that are not running. Only its service discovery
// differs: the file `bowline up` writes with the same meta labels
// (internal/local/prometheus.go) in place of kubernetes_sd_configs.
const podsScrapeConfig = `global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
- job_name: kubernetes-pods
  honor_labels: true
  file_sd_configs:
  - files: [%q]
    refresh_interval: 1s
  relabel_configs:
  - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
    action: keep
    regex: true
  - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape_slow]
    action: drop
    regex: true
  - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scheme]
    action: replace
    regex: (https?)
    target_label: __scheme__
  - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path]
    action: replace
    target_label: __metrics_path__
    regex: (.+)
  - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_port, __meta_kubernetes_pod_ip]
    action: replace
    regex: (\d+);((([0-9]+?)(\.|$)){4})
    replacement: $2:$1
    target_label: __address__
  - action: labelmap
    regex: __meta_kubernetes_pod_label_(.+)
  - source_labels: [__meta_kubernetes_namespace]
    action: replace
    target_label: namespace
  - source_labels: [__meta_kubernetes_pod_name]
    action: replace
    target_label: pod
  - source_labels: [__meta_kubernetes_pod_phase]
    regex: Pending|Succeeded|Failed|Completed
    action: drop
`

// prometheus is a running Prometheus listening on loopback.
type prometheus struct {
	addr string
}

func startPrometheus(t *testing.T, targets string) *prometheus {
	t.Helper()
	bin := prometheusTool.binary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, podsScrapeConfig, targets), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &prometheus{addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	runTool(t, "prometheus", dir, "http://"+p.addr+"/-/ready", bin, "--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+p.addr, "--log.level=warn")
	return p
}

// sample is one series of an instant query's vector result.
type sample struct {
	labels map[string]string
	value  float64
}

func (s sample) String() string {
	keys := make([]string, 0, len(s.labels))
	for k := range s.labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("{")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%q", k, s.labels[k])
	}
	fmt.Fprintf(&b, "} %g", s.value)
	return b.String()
}

// query runs an instant PromQL query as a user's dashboard would
// (GET /api/v1/query) and returns its vector.
func (p *prometheus) query(t *testing.T, q string) []sample {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + "/api/v1/query?" + url.Values{"query": {q}}.Encode())
	if err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string
		Error  string
		Data   struct {
			ResultType string
			Result     []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	if body.Status != "success" || body.Data.ResultType != "vector" {
		t.Fatalf("query %s: %s %s (%s)", q, body.Status, body.Error, body.Data.ResultType)
	}
	out := make([]sample, 0, len(body.Data.Result))
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("query %s: value %v", q, r.Value[1])
		}
		out = append(out, sample{labels: r.Metric, value: v})
	}
	return out
}

// until polls query q until ok accepts its result, failing after timeout
// with the last result.
func (p *prometheus) until(t *testing.T, what, q string, timeout time.Duration, ok func([]sample) bool) []sample {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := p.query(t, q)
		if ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			var lines []string
			for _, s := range got {
				lines = append(lines, s.String())
			}
			t.Fatalf("%s: not within %s; %s gives:\n  %s", what, timeout, q, strings.Join(lines, "\n  "))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// find is the first sample whose labels include every pair of want.
func find(ss []sample, want map[string]string) (sample, bool) {
	for _, s := range ss {
		match := true
		for k, v := range want {
			match = match && s.labels[k] == v
		}
		if match {
			return s, true
		}
	}
	return sample{}, false
}

// TestBookinfoMetricsInPrometheus: a real Prometheus, configured with
// Istio's standard pod scrape job over the targets file `bowline up` writes,
// scrapes every proxy of a Bookinfo with traffic flowing (HTTP through the
// ingress gateway, TCP through a gateway TCP server), and answers the PromQL
// of Istio's docs, its Grafana dashboards and Kiali with Istio's labels,
// and a Telemetry tag override of a TCP metric.
func TestBookinfoMetricsInPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds binaries and Prometheus, runs processes")
	}
	bins := binaries(t)
	dir := bookinfoDir(t, bins)
	echo := startNamedTCPEcho(t, "tcp-echo")
	tcpPort := freePort(t)
	writeFile(t, filepath.Join(dir, "tcp-echo.yaml"), fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tcp-echo, namespace: default}
spec:
  hosts: [tcp-echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  endpoints: [{address: 127.0.0.1, ports: {tcp: %d}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tcp-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: %d, name: tcp, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo, namespace: default}
spec:
  hosts: ["*"]
  gateways: [tcp-gateway]
  tcp:
  - match: [{port: %d}]
    route: [{destination: {host: tcp-echo.default.svc.cluster.local, port: {number: 9000}}}]
---
# The Telemetry API's TCP overrides: a tag from a CEL expression on the
# opened connections the gateway reports.
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  metrics:
  - overrides:
    - match: {metric: TCP_OPENED_CONNECTIONS, mode: CLIENT}
      tagOverrides:
        listener_port: {value: string(destination.port)}
`, echo, tcpPort, tcpPort))
	m := startUp(t, filepath.Join(bins, "bowline"), dir, "--scrape-interval", "1s")
	targets := filepath.Join(dir, ".bowline", "prometheus-targets.json")
	prom := startPrometheus(t, targets)

	// Traffic for the whole test: pages as anonymous and as jason, and a TCP
	// connection now and then. Bounded in count; it ends with the test.
	ctx, stop := context.WithCancel(context.Background())
	trafficDone := make(chan struct{})
	go func() {
		defer close(trafficDone)
		for i := 0; ctx.Err() == nil && i < 3000; i++ {
			user := ""
			if i%2 == 1 {
				user = "jason"
			}
			_ = m.productPageQuiet(ctx, user)
			if i%5 == 0 {
				_, _ = tcpHello(fmt.Sprintf("127.0.0.1:%d", tcpPort))
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	defer func() { stop(); <-trafficDone }()

	// Every proxy is a target, named by the relabelling as Istio's job names pods.
	wantPods := []string{"details-v1-0", "istio-ingressgateway", "productpage-v1-0", "ratings-v1-0", "reviews-v1-0", "reviews-v2-0", "reviews-v3-0"}
	prom.until(t, "every proxy scraped", `up{job="kubernetes-pods"} == 1`, 90*time.Second, func(ss []sample) bool {
		for _, p := range wantPods {
			if _, ok := find(ss, map[string]string{"pod": p}); !ok {
				return false
			}
		}
		return true
	})
	up := prom.query(t, `up{job="kubernetes-pods", pod="reviews-v2-0"}`)
	if s, ok := find(up, map[string]string{"namespace": "default", "app": "reviews", "version": "v2"}); !ok || !strings.HasSuffix(s.labels["instance"], strings.TrimPrefix(m.admin(t, "reviews-v2-0"), "127.0.0.1")) {
		t.Errorf("reviews-v2's target lacks the pod's labels or its admin address: %v", up)
	}

	const fiveM = "[1m]" // the docs write 5m; 1m has the samples by now and keeps the test short
	t.Run("Istio docs: querying metrics", func(t *testing.T) {
		prom.until(t, "requests to productpage", `istio_requests_total{destination_service="productpage.default.svc.cluster.local"}`, 60*time.Second,
			func(ss []sample) bool {
				src, ok1 := find(ss, map[string]string{"reporter": "source", "source_workload": "istio-ingressgateway", "destination_workload": "productpage-v1", "response_code": "200"})
				dst, ok2 := find(ss, map[string]string{"reporter": "destination", "source_workload": "istio-ingressgateway", "destination_workload": "productpage-v1",
					"response_code": "200", "connection_security_policy": "mutual_tls", "source_workload_namespace": "istio-system", "destination_app": "productpage"})
				return ok1 && ok2 && src.value > 0 && dst.value > 0
			})
		prom.until(t, "requests to reviews v3", `istio_requests_total{destination_service="reviews.default.svc.cluster.local", destination_version="v3"}`, 60*time.Second,
			func(ss []sample) bool {
				_, ok := find(ss, map[string]string{"reporter": "destination", "source_workload": "productpage-v1", "destination_workload": "reviews-v3"})
				return ok
			})
		prom.until(t, "productpage 200 rate", `rate(istio_requests_total{destination_service=~"productpage.*", response_code="200"}`+fiveM+`)`, 60*time.Second,
			func(ss []sample) bool {
				s, ok := find(ss, map[string]string{"reporter": "destination", "destination_workload": "productpage-v1"})
				return ok && s.value > 0
			})
	})

	t.Run("Grafana: service dashboard", func(t *testing.T) {
		// Istio Service Dashboard: request volume, success rate, p99 duration by source.
		prom.until(t, "reviews request volume", `round(sum(irate(istio_requests_total{reporter="destination",destination_service=~"reviews.default.svc.cluster.local"}`+fiveM+`)), 0.001)`, 60*time.Second,
			func(ss []sample) bool { return len(ss) == 1 && ss[0].value > 0 })
		prom.until(t, "details success rate", `sum(irate(istio_requests_total{reporter="destination",destination_service=~"details.default.svc.cluster.local",response_code!~"5.*"}`+fiveM+`)) / sum(irate(istio_requests_total{reporter="destination",destination_service=~"details.default.svc.cluster.local"}`+fiveM+`))`, 60*time.Second,
			func(ss []sample) bool { return len(ss) == 1 && ss[0].value == 1 })
		p99 := prom.until(t, "ratings p99 by source", `histogram_quantile(0.99, sum(irate(istio_request_duration_milliseconds_bucket{reporter="destination",destination_service=~"ratings.default.svc.cluster.local"}`+fiveM+`)) by (source_workload, source_workload_namespace, le))`, 60*time.Second,
			func(ss []sample) bool {
				v2, ok2 := find(ss, map[string]string{"source_workload": "reviews-v2", "source_workload_namespace": "default"})
				v3, ok3 := find(ss, map[string]string{"source_workload": "reviews-v3", "source_workload_namespace": "default"})
				return ok2 && ok3 && v2.value > 0 && v3.value > 0 && !math.IsInf(v2.value, 0) && !math.IsInf(v3.value, 0)
			})
		t.Logf("ratings p99 by source: %v", p99)
		// The bucket series carry Istio's bounds (Prometheus 3 writes le as floats).
		buckets := prom.query(t, `count by (le) (istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload="details-v1"})`)
		for _, le := range []string{"0.5", "1.0", "5.0", "10.0", "25.0", "50.0", "100.0", "250.0", "500.0", "1000.0", "2500.0", "5000.0", "10000.0", "+Inf"} {
			if _, ok := find(buckets, map[string]string{"le": le}); !ok {
				t.Errorf("no istio_request_duration_milliseconds_bucket with le=%s: %v", le, buckets)
			}
		}
	})

	t.Run("Grafana: workload dashboard and Kiali graph", func(t *testing.T) {
		// Kiali's graph: the edges, by source and destination workload,
		// code and mTLS, from the destination's reports.
		q := `sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="default"}` + fiveM + `)) by (source_workload_namespace, source_workload, destination_service_name, destination_workload, response_code, connection_security_policy) > 0`
		edges := [][2]string{
			{"istio-ingressgateway", "productpage-v1"}, {"productpage-v1", "details-v1"},
			{"productpage-v1", "reviews-v1"}, {"productpage-v1", "reviews-v2"}, {"productpage-v1", "reviews-v3"},
			{"reviews-v2", "ratings-v1"}, {"reviews-v3", "ratings-v1"},
		}
		prom.until(t, "Bookinfo's graph edges over mTLS", q, 60*time.Second, func(ss []sample) bool {
			for _, e := range edges {
				if _, ok := find(ss, map[string]string{"source_workload": e[0], "destination_workload": e[1], "response_code": "200", "connection_security_policy": "mutual_tls"}); !ok {
					return false
				}
			}
			return true
		})
		// Workload dashboard: outbound requests of productpage by destination.
		prom.until(t, "productpage's outbound by destination", `sum(irate(istio_requests_total{reporter="source",source_workload="productpage-v1",source_workload_namespace="default"}`+fiveM+`)) by (destination_service, response_code)`, 60*time.Second,
			func(ss []sample) bool {
				_, ok1 := find(ss, map[string]string{"destination_service": "details.default.svc.cluster.local", "response_code": "200"})
				_, ok2 := find(ss, map[string]string{"destination_service": "reviews.default.svc.cluster.local", "response_code": "200"})
				return ok1 && ok2
			})
	})

	t.Run("TCP metrics", func(t *testing.T) {
		prom.until(t, "TCP connections through the gateway", `sum(istio_tcp_connections_opened_total{reporter="source",source_workload="istio-ingressgateway",destination_service="tcp-echo.default.svc.cluster.local"})`, 60*time.Second,
			func(ss []sample) bool { return len(ss) == 1 && ss[0].value >= 2 })
		// Istio's TCP panels: bytes sent and received per second.
		for _, metric := range []string{"istio_tcp_sent_bytes_total", "istio_tcp_received_bytes_total"} {
			prom.until(t, metric, `sum(rate(`+metric+`{reporter="source",source_workload="istio-ingressgateway",destination_service_name="tcp-echo"}`+fiveM+`)) by (destination_service)`, 60*time.Second,
				func(ss []sample) bool {
					s, ok := find(ss, map[string]string{"destination_service": "tcp-echo.default.svc.cluster.local"})
					return ok && s.value > 0
				})
		}
		// The Telemetry override's tag, as a user would group by it.
		prom.until(t, "TCP connections by the override's tag", `sum(istio_tcp_connections_opened_total{reporter="source",source_workload="istio-ingressgateway"}) by (listener_port)`, 60*time.Second,
			func(ss []sample) bool {
				s, ok := find(ss, map[string]string{"listener_port": strconv.Itoa(tcpPort)})
				return ok && s.value >= 2
			})
		prom.until(t, "closed TCP connections", `sum(istio_tcp_connections_closed_total{reporter="source",source_workload="istio-ingressgateway",destination_service="tcp-echo.default.svc.cluster.local"})`, 60*time.Second,
			func(ss []sample) bool { return len(ss) == 1 && ss[0].value >= 1 })
	})

	// The built-in dashboard draws the same TCP traffic as an edge.
	t.Run("dashboard TCP edge", func(t *testing.T) {
		dash := ""
		for line := range strings.SplitSeq(m.stdout.String(), "\n") {
			if rest, ok := strings.CutPrefix(line, "dashboard: "); ok {
				dash = rest
			}
		}
		if dash == "" {
			t.Fatalf("bowline up printed no dashboard line:\n%s", m.stdout.String())
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			var v struct {
				Graph struct {
					Edges []struct {
						FromName, ToName string
						TCPBytesRate     float64 `json:"tcpBytesRate"`
						TCPConnRate      float64 `json:"tcpConnRate"`
					}
				}
			}
			last := ""
			if resp, err := http.Get(strings.TrimSuffix(dash, "/") + "/dashboard/api/mesh?window=30"); err == nil {
				_ = json.NewDecoder(resp.Body).Decode(&v)
				resp.Body.Close()
			}
			for _, e := range v.Graph.Edges {
				if e.FromName == "istio-ingressgateway" && e.ToName == "tcp-echo.default" {
					if e.TCPBytesRate > 0 && e.TCPConnRate > 0 {
						return
					}
					last = fmt.Sprintf("%+v", e)
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no TCP edge istio-ingressgateway -> tcp-echo.default with traffic after 60s: %s (edges %+v)", last, v.Graph.Edges)
			}
			time.Sleep(500 * time.Millisecond)
		}
	})
}

package proxy_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/bowline-mesh/bowline/internal/proxy"
	"github.com/bowline-mesh/bowline/internal/proxy/xdsclient"
)

// podSidecar is a proxy with a pod's status, health and stats ports.
type podSidecar struct {
	p                     *proxy.Proxy
	status, health, stats string
	done                  chan error
}

func startPodSidecar(t *testing.T, probes map[string]proxy.AppProbe, app *proxy.AppScrape) *podSidecar {
	t.Helper()
	cp := startControlPlane(t, "")
	lp := freePort(t)
	static := clusterWith("app", func(c *clusterv3.Cluster) {
		c.ClusterDiscoveryType, c.EdsClusterConfig = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}, nil
		c.LoadAssignment = cla("app", "127.0.0.1:1")
	})
	cp.push(t, resources([]types.Resource{listenerOf(t, "tcp", "127.0.0.1", lp, true, tcpFilter(t, "app"))}, nil, []types.Resource{static}, nil))
	s := &podSidecar{status: hostPort(freePort(t)), health: hostPort(freePort(t)), stats: hostPort(freePort(t)), done: make(chan error, 1)}
	logs := &syncBuffer{}
	s.p = proxy.New(proxy.Config{
		Discovery: cp.addr, InsecureXDS: true, Logger: slog.New(slog.NewTextHandler(logs, nil)), XDSBackoffBase: 50 * time.Millisecond, DrainDuration: time.Second,
		Node:          xdsclient.NodeInfo{ID: nodeID, Namespace: "default", Workload: "web", IPs: []string{"127.0.0.1"}},
		AccessLog:     "off",
		StatusAddress: s.status, HealthAddress: s.health, StatsAddress: s.stats,
		AppProbes: probes, AppMetrics: app,
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { s.done <- s.p.Run(ctx) }()
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			cancel()
			select {
			case <-s.done:
			case <-time.After(10 * time.Second):
				t.Error("proxy did not stop")
			}
		})
	})
	waitReady(t, s.p, logs)
	return s
}

func getStatus(t *testing.T, url string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// TestAppProbes: the kubelet's rewritten probes on the status port run the
// app's original probes (HTTP with its path and headers, TCP, gRPC health)
// and answer with their outcome.
func TestAppProbes(t *testing.T) {
	var ready atomic.Bool
	var seen sync.Map
	app := startBackend(t, "app", func(w http.ResponseWriter, r *http.Request) {
		seen.Store("path", r.URL.Path)
		seen.Store("probe-header", r.Header.Get("X-Probe"))
		seen.Store("user-agent", r.Header.Get("User-Agent"))
		seen.Store("remote", r.RemoteAddr)
		switch {
		case r.URL.Path == "/moved":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case ready.Load():
			_, _ = io.WriteString(w, "app ok")
		default:
			http.Error(w, "app warming up", http.StatusServiceUnavailable)
		}
	})
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	hs.SetServingStatus("reviews", healthpb.HealthCheckResponse_NOT_SERVING)
	go func() { _ = gs.Serve(gln) }()
	t.Cleanup(gs.Stop)
	closed := freePort(t)

	probes, err := proxy.ParseAppProbes(`{
		"/app-health/web/readyz": {"httpGet": {"path": "/ready", "port": ` + itoa(int(port(app.addr))) + `, "httpHeaders": [{"name": "X-Probe", "value": "kubelet"}]}, "timeoutSeconds": 2},
		"/app-health/web/startupz": {"httpGet": {"path": "moved", "port": ` + itoa(int(port(app.addr))) + `}},
		"/app-health/web/livez": {"tcpSocket": {"port": ` + itoa(int(port(app.addr))) + `}},
		"/app-health/db/livez": {"tcpSocket": {"port": ` + itoa(closed) + `}},
		"/app-health/grpc/readyz": {"grpc": {"port": ` + itoa(int(port(gln.Addr().String()))) + `}},
		"/app-health/grpc/livez": {"grpc": {"port": ` + itoa(int(port(gln.Addr().String()))) + `, "service": "reviews"}}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	s := startPodSidecar(t, probes, nil)
	base := "http://" + s.status

	kubelet := map[string]string{"User-Agent": "kube-probe/1.37"}
	if code, body := getStatus(t, base+"/app-health/web/readyz", kubelet); code != http.StatusServiceUnavailable || body != "app warming up" {
		t.Errorf("readyz while the app is not ready: %d %q", code, body)
	}
	ready.Store(true)
	if code, body := getStatus(t, base+"/app-health/web/readyz", kubelet); code != http.StatusOK || body != "app ok" {
		t.Errorf("readyz: %d %q", code, body)
	}
	for k, want := range map[string]string{"path": "/ready", "probe-header": "kubelet", "user-agent": "kube-probe/1.37"} {
		if v, _ := seen.Load(k); v != want {
			t.Errorf("app saw %s %q, want %q", k, v, want)
		}
	}
	if v, _ := seen.Load("remote"); !strings.HasPrefix(v.(string), "127.0.0.6:") {
		t.Errorf("probe came from %v, want 127.0.0.6 (never captured by the pod's iptables)", v)
	}
	if code, _ := getStatus(t, base+"/app-health/web/startupz", nil); code != http.StatusOK {
		t.Errorf("a redirect passes like a kubelet probe: got %d", code)
	}
	if code, _ := getStatus(t, base+"/app-health/web/livez", nil); code != http.StatusOK {
		t.Errorf("tcp probe to a listening port: %d", code)
	}
	if code, body := getStatus(t, base+"/app-health/db/livez", nil); code != http.StatusInternalServerError || !strings.Contains(body, "tcp probe") {
		t.Errorf("tcp probe to a closed port: %d %q", code, body)
	}
	if code, _ := getStatus(t, base+"/app-health/grpc/readyz", nil); code != http.StatusOK {
		t.Errorf("grpc probe, server SERVING: %d", code)
	}
	if code, body := getStatus(t, base+"/app-health/grpc/livez", nil); code != http.StatusInternalServerError || body != "grpc probe: NOT_SERVING" {
		t.Errorf("grpc probe, service NOT_SERVING: %d %q", code, body)
	}
	if code, body := getStatus(t, base+"/app-health/other/readyz", nil); code != http.StatusBadRequest || body != "no app probe is configured for /app-health/other/readyz" {
		t.Errorf("unknown probe: %d %q", code, body)
	}
}

// TestStatusPorts: /healthz/ready on the status and health ports, the
// proxy's stats on the stats port, the app's metrics merged into the status
// port's, /quitquitquit stopping the proxy and readiness failing from then.
func TestStatusPorts(t *testing.T) {
	app := startBackend(t, "app", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, "# HELP app_orders_total Orders taken.\n# TYPE app_orders_total counter\napp_orders_total{shop=\"a\"} 7\n"+
			"# TYPE istio_requests_total counter\nistio_requests_total{reporter=\"app\"} 99\n")
	})
	scrape, err := proxy.ParseAppScrape(`{"scrape":"true","path":"/metrics","port":"` + itoa(int(port(app.addr))) + `"}`)
	if err != nil {
		t.Fatal(err)
	}
	s := startPodSidecar(t, nil, scrape)
	for _, a := range []string{s.status, s.health} {
		if code, _ := getStatus(t, "http://"+a+"/healthz/ready", nil); code != http.StatusOK {
			t.Errorf("%s/healthz/ready: %d", a, code)
		}
	}
	_, merged := getStatus(t, "http://"+s.status+"/stats/prometheus", nil)
	if !strings.Contains(merged, `app_orders_total{shop="a"} 7`) {
		t.Errorf("merged metrics lack the app's:\n%s", merged)
	}
	if strings.Contains(merged, `reporter="app"`) {
		t.Errorf("the app's istio_requests_total family was merged into the proxy's namespace:\n%s", merged)
	}
	if n := strings.Count(merged, "# TYPE app_orders_total counter"); n != 1 {
		t.Errorf("app family appears %d times", n)
	}
	_, own := getStatus(t, "http://"+s.stats+"/stats/prometheus", nil)
	if strings.Contains(own, "app_orders_total") {
		t.Errorf("the stats port serves the app's metrics:\n%s", own)
	}

	if code, _ := getStatus(t, "http://"+s.status+"/quitquitquit", nil); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /quitquitquit: %d, want 405", code)
	}
	resp, err := http.Post("http://"+s.status+"/quitquitquit", "text/plain", nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /quitquitquit: %v %v", resp, err)
	}
	resp.Body.Close()
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("proxy run after /quitquitquit: %v", err)
		}
		s.done <- nil // for cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("/quitquitquit did not stop the proxy")
	}
}

func TestParseAppProbesErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"/healthz": {"tcpSocket": {"port": 80}}}`, `app probe "/healthz": want /app-health/CONTAINER/readyz, livez or startupz`},
		{`{"/app-health/web/readyz": {"httpGet": {"path": "/", "port": "http"}}}`, `app probe /app-health/web/readyz: field httpGet.port: "http" is not a port number (named ports are resolved by the injector)`},
		{`{"/app-health/web/readyz": {"tcpSocket": {"port": 70000}}}`, `app probe /app-health/web/readyz: field tcpSocket.port: 70000 is not a port number (named ports are resolved by the injector)`},
		{`{"/app-health/web/readyz": {"httpGet": {"path": "/", "port": 80, "scheme": "FTP"}}}`, `app probe /app-health/web/readyz: field httpGet.scheme: "FTP", want HTTP or HTTPS`},
		{`{"/app-health/web/readyz": {"timeoutSeconds": 1}}`, `app probe /app-health/web/readyz: want exactly one of httpGet, tcpSocket and grpc, got 0`},
		{`{"/app-health/web/readyz": {"tcpSocket": {"port": 80}, "grpc": {"port": 80}}}`, `app probe /app-health/web/readyz: want exactly one of httpGet, tcpSocket and grpc, got 2`},
		{`[1]`, `app probes: json: cannot unmarshal array into Go value of type map[string]struct`},
	}
	for _, tt := range tests {
		if _, err := proxy.ParseAppProbes(tt.in); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("ParseAppProbes(%s) = %v\nwant %s", tt.in, err, tt.want)
		}
	}
	if m, err := proxy.ParseAppProbes(""); err != nil || m != nil {
		t.Errorf("empty: %v %v", m, err)
	}
}

func TestParseAppScrape(t *testing.T) {
	if a, err := proxy.ParseAppScrape(`{"scrape":"true","path":"","port":"9090"}`); err != nil || a == nil || a.Port != 9090 || a.Path != "/metrics" {
		t.Errorf("default path: %+v %v", a, err)
	}
	if a, err := proxy.ParseAppScrape(`{"scrape":"false","port":"9090"}`); err != nil || a != nil {
		t.Errorf("scrape false: %+v %v", a, err)
	}
	if _, err := proxy.ParseAppScrape(`{"port":"http"}`); err == nil || err.Error() != `app metrics: field port: "http" is not a port number` {
		t.Errorf("bad port: %v", err)
	}
}

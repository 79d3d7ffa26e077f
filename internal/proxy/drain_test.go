package proxy_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/bowline-mesh/bowline/internal/proxy"
	"github.com/bowline-mesh/bowline/internal/proxy/xdsclient"
)

// TestGracefulDrain: POST /drain on the status port (what the native
// sidecar's preStop hook sends when the pod's termination starts) fails
// readiness and closes inbound HTTP connections after their response, while
// the inbound listener keeps accepting and outbound connections stay
// kept-alive; the proxy keeps running until it is told to stop.
func TestGracefulDrain(t *testing.T) {
	app := startBackend(t, "app", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "app") })
	cp := startControlPlane(t, "")
	in, out := freePort(t), freePort(t)
	cp.push(t, resources(
		[]types.Resource{httpListener(t, "inbound|9080||", in, "in"), httpListener(t, "outbound_http", out, "out")},
		[]types.Resource{routeConfig("in", routeTo("/", "app")), routeConfig("out", routeTo("/", "app"))},
		[]types.Resource{edsCluster("app")}, []types.Resource{cla("app", app.addr)}))
	status := hostPort(freePort(t))
	logs := &syncBuffer{}
	p := proxy.New(proxy.Config{
		Discovery: cp.addr, InsecureXDS: true, Logger: slog.New(slog.NewTextHandler(logs, nil)), XDSBackoffBase: 50 * time.Millisecond,
		DrainDuration: time.Second, AccessLog: "off", StatusAddress: status,
		Node: xdsclient.NodeInfo{ID: nodeID, Type: "sidecar", Namespace: "default", Workload: "web", IPs: []string{"127.0.0.1"}},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("proxy did not stop")
		}
	})
	waitReady(t, p, logs)

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	send := func(addr string) *http.Response {
		t.Helper()
		resp, err := client.Get("http://" + addr + "/")
		if err != nil {
			t.Fatalf("GET %s: %v", addr, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != "app" {
			t.Fatalf("GET %s: %d %q, want 200 app", addr, resp.StatusCode, b)
		}
		return resp
	}
	for _, a := range []string{hostPort(in), hostPort(out)} {
		if resp := send(a); resp.Close {
			t.Errorf("GET %s before the drain: Connection: close", a)
		}
	}

	if code, _ := getStatus(t, "http://"+status+"/drain", nil); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /drain: %d, want 405", code)
	}
	resp, err := http.Post("http://"+status+"/drain", "text/plain", nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /drain: %v %v", resp, err)
	}
	resp.Body.Close()
	if code, body := getStatus(t, "http://"+status+"/healthz/ready", nil); code != http.StatusServiceUnavailable || body != "draining" {
		t.Errorf("/healthz/ready while draining: %d %q, want 503 draining", code, body)
	}
	// The inbound listener still answers, on new connections too, and asks
	// every caller to close; outbound is untouched.
	for range 3 {
		if resp := send(hostPort(in)); !resp.Close {
			t.Errorf("inbound answer while draining has no Connection: close")
		}
	}
	if resp := send(hostPort(out)); resp.Close {
		t.Errorf("outbound answer while draining: Connection: close, want keep-alive")
	}
	select {
	case err := <-done:
		t.Fatalf("proxy stopped on /drain: %v", err)
	default:
	}
}

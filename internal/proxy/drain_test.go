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
// drainProxy is a sidecar with an inbound and an outbound HTTP listener,
// both to one app, and a status port.
type drainProxy struct {
	p               *proxy.Proxy
	in, out, status string
	done            chan error
	cancel          context.CancelFunc
	client          *http.Client
}

func startDrainProxy(t *testing.T, drain time.Duration, termination bool) *drainProxy {
	t.Helper()
	app := startBackend(t, "app", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "app") })
	cp := startControlPlane(t, "")
	in, out := freePort(t), freePort(t)
	cp.push(t, resources(
		[]types.Resource{httpListener(t, "inbound|9080||", in, "in"), httpListener(t, "outbound_http", out, "out")},
		[]types.Resource{routeConfig("in", routeTo("/", "app")), routeConfig("out", routeTo("/", "app"))},
		[]types.Resource{edsCluster("app")}, []types.Resource{cla("app", app.addr)}))
	d := &drainProxy{in: hostPort(in), out: hostPort(out), status: hostPort(freePort(t)), done: make(chan error, 1),
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}}
	logs := &syncBuffer{}
	d.p = proxy.New(proxy.Config{
		Discovery: cp.addr, InsecureXDS: true, Logger: slog.New(slog.NewTextHandler(logs, nil)), XDSBackoffBase: 50 * time.Millisecond,
		DrainDuration: drain, TerminationDrain: termination, AccessLog: "off", StatusAddress: d.status,
		Node: xdsclient.NodeInfo{ID: nodeID, Type: "sidecar", Namespace: "default", Workload: "web", IPs: []string{"127.0.0.1"}},
	})
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() { d.done <- d.p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		d.p.Quit()
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			t.Error("proxy did not stop")
		}
		d.client.CloseIdleConnections()
	})
	waitReady(t, d.p, logs)
	return d
}

// send GETs / on addr and fails t unless the app answered; it returns the
// response (its body read).
func (d *drainProxy) send(t *testing.T, addr string) *http.Response {
	t.Helper()
	resp, err := d.client.Get("http://" + addr + "/")
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

func (d *drainProxy) running(t *testing.T, when string) {
	t.Helper()
	select {
	case err := <-d.done:
		d.done <- err
		t.Fatalf("proxy stopped %s: %v", when, err)
	default:
	}
}

func TestGracefulDrain(t *testing.T) {
	d := startDrainProxy(t, time.Second, false)
	status := d.status
	send := func(addr string) *http.Response { return d.send(t, addr) }
	in, out := d.in, d.out
	for _, a := range []string{in, out} {
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
		if resp := send(in); !resp.Close {
			t.Errorf("inbound answer while draining has no Connection: close")
		}
	}
	if resp := send(out); resp.Close {
		t.Errorf("outbound answer while draining: Connection: close, want keep-alive")
	}
	d.running(t, "on /drain")
}

// TestTerminationDrain: with TerminationDrain (the injected sidecar's
// --termination-drain), the end of the proxy's context (SIGTERM) starts the
// graceful drain and every listener keeps serving, outbound too, for the
// drain duration; /quitquitquit ends it at once.
func TestTerminationDrain(t *testing.T) {
	d := startDrainProxy(t, time.Hour, true)
	d.cancel()
	// Generous: a loaded machine may take long to run the proxy's goroutines.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if code, _ := getStatus(t, "http://"+d.status+"/healthz/ready", nil); code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("readiness still passing a minute after SIGTERM")
		}
	}
	if resp := d.send(t, d.in); !resp.Close {
		t.Errorf("inbound answer after SIGTERM has no Connection: close")
	}
	d.send(t, d.out)
	d.running(t, "before the drain duration")
	resp, err := http.Post("http://"+d.status+"/quitquitquit", "text/plain", nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /quitquitquit: %v %v", resp, err)
	}
	resp.Body.Close()
	select {
	case err := <-d.done:
		d.done <- err
		if err != nil {
			t.Errorf("proxy run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("/quitquitquit did not end the termination drain")
	}
}

package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/internal/proxy"
	"github.com/bowline-mesh/bowline/internal/proxy/xdsclient"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// This file sends hostile HTTP/1.1, byte for byte, at an Istio ingress
// gateway and at a sidecar's outbound listener, both fed by discovery from
// Istio YAML, in front of prod/echo (its own sidecar, mTLS between proxies):
// a target that looks like an authority, request smuggling framings, NUL in
// the path. It asserts what the client gets and what the application saw.

// seenBackend answers "seen METHOD TARGET host=HOST" and remembers it.
type seenBackend struct {
	port int
	mu   sync.Mutex
	seen []string
}

func startSeenBackend(t *testing.T) *seenBackend {
	t.Helper()
	b := &seenBackend{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		line := fmt.Sprintf("seen %s %s host=%s", r.Method, r.RequestURI, r.Host)
		b.mu.Lock()
		b.seen = append(b.seen, line)
		b.mu.Unlock()
		_, _ = io.WriteString(w, line)
	})}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); wg.Wait() })
	b.port = ln.Addr().(*net.TCPAddr).Port
	return b
}

func (b *seenBackend) requests() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.seen...)
}

// rawHTTP writes raw to a new connection to addr and reads up to n
// responses; closed tells whether the proxy closed the connection.
func rawHTTP(t *testing.T, addr, raw string, n int) (statuses []int, bodies []string, closed bool) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for len(statuses) < n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return statuses, bodies, true
			}
			t.Fatalf("read response %d: %v", len(statuses)+1, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		statuses, bodies = append(statuses, resp.StatusCode), append(bodies, string(body))
	}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err = br.Peek(1)
	return statuses, bodies, errors.Is(err, io.EOF)
}

// TestHostileHTTPEndToEnd: through the ingress gateway and a client sidecar's
// outbound listener, "GET //evil.example/x" reaches the application as a path
// with the client's Host (merged to /evil.example/x by the server sidecar's
// DECODE_AND_MERGE_SLASHES), never with authority evil.example; CL.TE, TE.CL
// and differing Content-Lengths are 400 and the connection closed without
// the smuggled request running; %00 in the path is 400.
func TestHostileHTTPEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	backend := startSeenBackend(t)
	m := startMesh(t)
	inPort := freePort(t)
	m.startSidecar(t, sidecarOptions{namespace: "prod", sa: "echo", workload: "echo",
		inbound: map[uint32]uint32{uint32(inPort): uint32(backend.port)}})
	if err := m.reg.Register(registry.Workload{Name: "echo", Namespace: "prod", Address: "127.0.0.1",
		Ports: map[string]uint32{"http": uint32(inPort)}, Labels: map[string]string{"app": "echo"}, ServiceAccount: "echo", Healthy: true}); err != nil {
		t.Fatal(err)
	}
	clientSC := m.startSidecar(t, sidecarOptions{namespace: "prod", sa: "frontend", workload: "frontend", outbound: true})

	writeAtomic(t, filepath.Join(m.configDir, "gateway.yaml"), fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo-ingress, namespace: prod}
spec:
  hosts: ["*"]
  gateways: [istio-system/ingress]
  http:
  - route:
    - destination: {host: %s, port: {number: %d}}
`, meshHost, meshPort))
	gwPort := freePort(t)
	gwToken := filepath.Join(m.tokenDir, "istio-system.gateway.token")
	writeAtomic(t, gwToken, m.tokens.Mint("istio-system", "istio-ingressgateway-service-account"))
	gw := &sidecar{log: &syncWriter{}}
	gw.p = proxy.New(sidecarConfig(m.xds, m.root, gwToken, xdsclient.NodeInfo{Type: "router", Namespace: "istio-system",
		Workload: "istio-ingressgateway", ServiceAccount: "istio-ingressgateway-service-account",
		Labels: map[string]string{"istio": "ingressgateway"}, IPs: []string{"127.0.0.1"},
		GatewayPorts: map[uint32]uint32{80: uint32(gwPort)}}, gw.log))
	gw.run(t, "istio-ingressgateway", 30*time.Second)

	gateway := fmt.Sprintf("127.0.0.1:%d", gwPort)
	hosts := map[string]string{gateway: "echo.example", clientSC.outbound: fmt.Sprintf("%s:%d", meshHost, meshPort)}
	entries := []struct{ name, addr string }{{"gateway", gateway}, {"outbound", clientSC.outbound}}
	for _, e := range entries {
		deadline := time.Now().Add(20 * time.Second)
		for {
			var st []int
			if c, err := net.DialTimeout("tcp", e.addr, time.Second); err == nil {
				c.Close()
				st, _, _ = rawHTTP(t, e.addr, "GET /ready HTTP/1.1\r\nHost: "+hosts[e.addr]+"\r\nConnection: close\r\n\r\n", 1)
				if len(st) == 1 && st[0] == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never answered 200: %v", e.name, st)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	for _, e := range entries {
		host := hosts[e.addr]
		t.Run(e.name+": // target is a path", func(t *testing.T) {
			for _, method := range []string{"GET", "POST"} {
				raw := method + " //evil.example/x HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n"
				if method == "POST" {
					raw += "Content-Length: 2\r\n\r\nhi"
				} else {
					raw += "\r\n"
				}
				st, bodies, _ := rawHTTP(t, e.addr, raw, 1)
				want := "seen " + method + " /evil.example/x host=" + host
				if len(st) != 1 || st[0] != 200 || bodies[0] != want {
					t.Errorf("%s: got %v %v, want 200 %q", method, st, bodies, want)
				}
			}
			for _, s := range backend.requests() {
				if strings.Contains(s, "evil.example/x host=evil.example") || strings.Contains(s, "http://") {
					t.Errorf("application saw %q", s)
				}
			}
		})
		t.Run(e.name+": smuggling is 400 and closes", func(t *testing.T) {
			smuggled := "GET /smuggled HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
			for name, raw := range map[string]string{
				"CL.TE": "POST /a HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: " + fmt.Sprint(5+len(smuggled)) +
					"\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
				"TE.CL": "POST /a HTTP/1.1\r\nHost: " + host + "\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" +
					fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(smuggled), smuggled),
				"differing Content-Lengths": "POST /a HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 0\r\nContent-Length: " +
					fmt.Sprint(len(smuggled)) + "\r\n\r\n" + smuggled,
			} {
				st, bodies, closed := rawHTTP(t, e.addr, raw, 2)
				if len(st) != 1 || st[0] != 400 || !closed {
					t.Errorf("%s: got %v %q (closed %v), want one 400 and the connection closed", name, st, bodies, closed)
				}
			}
			for _, s := range backend.requests() {
				if strings.Contains(s, "/smuggled") || strings.HasPrefix(s, "seen POST /a ") {
					t.Errorf("application saw %q", s)
				}
			}
		})
		t.Run(e.name+": NUL in the path is 400", func(t *testing.T) {
			st, bodies, _ := rawHTTP(t, e.addr, "GET /adm%00in HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n", 1)
			if len(st) != 1 || st[0] != 400 || bodies[0] != "Bad Request" {
				t.Errorf("got %v %q, want 400 Bad Request", st, bodies)
			}
			for _, s := range backend.requests() {
				if strings.Contains(s, "%00") {
					t.Errorf("application saw %q", s)
				}
			}
		})
	}
}

package proxy_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bowline-mesh/bowline/internal/proxy"
)

// This file sends request heads over the limits, malformed heads, slow
// clients and hop-by-hop headers through a running proxy, byte for byte, and
// asserts the status, whether the connection was closed and what the
// backend saw.

// TestHeadLimits: a head over 60 KiB (headers or target) or with more than
// 100 headers is 431 and the connection closed (Envoy's defaults), on
// HTTP/1.1 and HTTP/2; heads just under the limits pass; the HCM's
// max_request_headers_kb and max_headers_count move the limits.
func TestHeadLimits(t *testing.T) {
	rec := startRecorder(t, false)
	pp, lp := freePort(t), freePort(t)
	newEnv(t, resources(
		[]types.Resource{
			listenerOf(t, "gateway", "127.0.0.1", pp, true, hcmFilter(t, "limits")),
			listenerOf(t, "limited", "127.0.0.1", lp, true, limitedHCM(t, "limits", 4, 10)),
		},
		[]types.Resource{&routev3.RouteConfiguration{Name: "limits", VirtualHosts: []*routev3.VirtualHost{
			{Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{routeTo("/", "h1")}}}}},
		[]types.Resource{edsCluster("h1")},
		[]types.Resource{cla("h1", rec.addr)},
	))
	h := struct {
		plain string
		h1    *recorder
	}{hostPort(pp), rec}
	limited := hostPort(lp)
	headers := func(n, size int) string {
		var b strings.Builder
		for i := range n {
			b.WriteString("X-H" + itoa(i) + ": " + strings.Repeat("v", size) + "\r\n")
		}
		return b.String()
	}
	cases := []struct {
		name, addr, target, headers string
		want                        int
	}{
		{"100 KiB of headers", h.plain, "/big", headers(10, 10<<10), 431},
		{"200 headers", h.plain, "/many", headers(200, 1), 431},
		{"1 MiB target", h.plain, "/" + strings.Repeat("a", 1<<20), "", 431},
		{"61 KiB target", h.plain, "/" + strings.Repeat("a", 61<<10), "", 431},
		{"59 KiB of headers", h.plain, "/fits", headers(59, 1000), 200},
		{"99 headers", h.plain, "/fits", headers(99, 1), 200},
		{"5 KiB over max_request_headers_kb 4", limited, "/big", headers(5, 1000), 431},
		{"11 headers over max_headers_count 10", limited, "/many", headers(11, 1), 431},
		{"9 headers under max_headers_count 10", limited, "/fits", headers(9, 1), 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.h1.requests())
			raw := "GET " + tc.target + " HTTP/1.1\r\nHost: echo.prod\r\n" + tc.headers + "\r\n"
			resps, _, closed := rawExchange(t, tc.addr, raw, 1)
			if len(resps) != 1 || resps[0].StatusCode != tc.want {
				t.Fatalf("got %d responses, want one %d", len(resps), tc.want)
			}
			served := len(h.h1.requests()) - before
			if tc.want == 431 && (!closed || served != 0) {
				t.Fatalf("431 with the connection closed %v, backend served %d; want closed, none served", closed, served)
			}
			if tc.want == 200 && served != 1 {
				t.Fatalf("backend served %d, want 1", served)
			}
		})
	}
	t.Run("HTTP/2 over 100 headers", func(t *testing.T) {
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetUnencryptedHTTP2(true)
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr}
		req, _ := http.NewRequest("GET", "http://"+h.plain+"/h2many", nil)
		req.Host = "echo.prod"
		for i := range 150 {
			req.Header.Set("X-H"+itoa(i), "v")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 431 || resp.ProtoMajor != 2 {
			t.Fatalf("got %s %d, want HTTP/2 431", resp.Proto, resp.StatusCode)
		}
	})
}

// TestMalformedHeads: obs-fold, a bare LF, whitespace before the colon and
// NUL or CR in a value are 400 and the connection closed; the backend never
// sees the request (nor what was pipelined behind it).
func TestMalformedHeads(t *testing.T) {
	h := newHostileEnv(t)
	next := "GET /next HTTP/1.1\r\nHost: echo.prod\r\n\r\n"
	cases := []struct{ name, raw string }{
		{"obs-fold", "GET /fold HTTP/1.1\r\nHost: echo.prod\r\nX-A: one\r\n two\r\n\r\n"},
		{"obs-fold with a tab", "GET /fold HTTP/1.1\r\nHost: echo.prod\r\nX-A: one\r\n\ttwo\r\n\r\n"},
		{"bare LF in a header line", "GET /lf HTTP/1.1\r\nHost: echo.prod\nX-A: 1\r\n\r\n"},
		{"bare LF after the request line", "GET /lf HTTP/1.1\nHost: echo.prod\r\n\r\n"},
		{"bare LF ending the head", "GET /lf HTTP/1.1\r\nHost: echo.prod\r\n\n"},
		{"space before the colon", "GET /ws HTTP/1.1\r\nHost: echo.prod\r\nX-A : 1\r\n\r\n"},
		{"tab before the colon", "GET /ws HTTP/1.1\r\nHost: echo.prod\r\nX-A\t: 1\r\n\r\n"},
		{"NUL in a value", "GET /nul HTTP/1.1\r\nHost: echo.prod\r\nX-A: a\x00b\r\n\r\n"},
		{"CR in a value", "GET /cr HTTP/1.1\r\nHost: echo.prod\r\nX-A: a\rb\r\n\r\n"},
		{"NUL in the name", "GET /nul HTTP/1.1\r\nHost: echo.prod\r\nX-\x00A: 1\r\n\r\n"},
	}
	for _, tc := range cases {
		for _, addr := range []string{h.plain, h.normalized} {
			t.Run(tc.name, func(t *testing.T) {
				before := len(h.h1.requests())
				resps, _, closed := rawExchange(t, addr, tc.raw+next, 2)
				if len(resps) != 1 || resps[0].StatusCode != 400 || !closed {
					t.Fatalf("got %d responses (closed %v), want one 400 and the connection closed", len(resps), closed)
				}
				if served := h.h1.requests()[before:]; len(served) != 0 {
					t.Fatalf("backend served %v", served)
				}
			})
		}
	}
}

// TestSlowClients: a client that sends its head slowly (slowloris, all at
// once or a byte at a time) is cut off at the request headers timeout, and
// a keep-alive connection without a next request at the idle timeout.
func TestSlowClients(t *testing.T) {
	rec := startRecorder(t, false)
	port := freePort(t)
	cp := startControlPlane(t, "")
	cp.push(t, resources(
		[]types.Resource{listenerOf(t, "gateway", "127.0.0.1", port, true, hcmFilter(t, "slow"))},
		[]types.Resource{&routev3.RouteConfiguration{Name: "slow", VirtualHosts: []*routev3.VirtualHost{
			{Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{routeTo("/", "h1")}}}}},
		[]types.Resource{edsCluster("h1")},
		[]types.Resource{cla("h1", rec.addr)},
	))
	startProxyAs(t, cp.addr, false, nodeID, "json", func(c *proxy.Config) {
		c.RequestHeadersTimeout = 300 * time.Millisecond
		c.IdleTimeout = 300 * time.Millisecond
	})
	addr := hostPort(port)
	waitFor(t, "listener", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	// closedWithin reports whether the proxy closes c within d while the
	// client keeps writing trickle (one byte per interval), if any.
	closedWithin := func(c net.Conn, d time.Duration, trickle string) bool {
		deadline := time.Now().Add(d)
		done := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, c)
			done <- err
		}()
		for i := 0; ; i++ {
			select {
			case <-done:
				return true
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return false
			}
			if i < len(trickle) {
				_, _ = c.Write([]byte{trickle[i]})
			}
		}
	}
	t.Run("head never finished", func(t *testing.T) {
		c := dialTCP(t, addr)
		defer c.Close()
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: echo.prod\r\nX-Slow: ")
		if !closedWithin(c, 10*time.Second, "") {
			t.Fatal("connection still open 10s after a partial head (timeout 300ms)")
		}
	})
	t.Run("head trickled a byte at a time", func(t *testing.T) {
		c := dialTCP(t, addr)
		defer c.Close()
		if !closedWithin(c, 10*time.Second, "GET / HTTP/1.1\r\nHost: echo.prod\r\n"+strings.Repeat("X-Slow: 1\r\n", 100)) {
			t.Fatal("trickling client kept its connection 10s (timeout 300ms)")
		}
	})
	t.Run("idle keep-alive connection", func(t *testing.T) {
		c := dialTCP(t, addr)
		defer c.Close()
		_, _ = io.WriteString(c, "GET /one HTTP/1.1\r\nHost: echo.prod\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
			t.Fatalf("idle connection: read %v, want EOF (closed by the proxy)", err)
		}
	})
}

// TestHopByHop: hop-by-hop request headers never reach the backend
// (Connection and what it names, Keep-Alive, Proxy-Connection, TE other than
// trailers, Upgrade other than websocket); end-to-end headers do.
func TestHopByHop(t *testing.T) {
	e := newForwardedEnv(t)
	raw := "GET /hop HTTP/1.1\r\nHost: echo.prod\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n" +
		"Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: gzip\r\nUpgrade: h2c\r\nX-Kept: yes\r\n\r\n"
	got := e.headersSeen(t, e.sidecar, raw)
	for _, k := range []string{"Connection", "X-Secret", "Keep-Alive", "Proxy-Connection", "Te", "Upgrade", "Http2-Settings"} {
		if v, ok := got[k]; ok {
			t.Errorf("backend saw hop-by-hop %s: %q", k, v)
		}
	}
	if got["X-Kept"] != "yes" {
		t.Errorf("backend saw X-Kept %q, want yes", got["X-Kept"])
	}
	got = e.headersSeen(t, e.sidecar, "GET /te HTTP/1.1\r\nHost: echo.prod\r\nTE: trailers\r\n\r\n")
	if got["Te"] != "trailers" {
		t.Errorf("TE: trailers arrived as %q, want kept", got["Te"])
	}
}

// TestForwardedFor: a gateway (use_remote_address) appends the peer to
// x-forwarded-for and drops a forged x-envoy-external-address (the loopback
// peer is internal: x-envoy-internal); a sidecar passes both as sent.
func TestForwardedFor(t *testing.T) {
	e := newForwardedEnv(t)
	raw := "GET /xff HTTP/1.1\r\nHost: echo.prod\r\nX-Forwarded-For: 203.0.113.9\r\n" +
		"X-Envoy-External-Address: 198.51.100.1\r\nX-Envoy-Internal: false\r\n\r\n"
	got := e.headersSeen(t, e.gateway, raw)
	if got["X-Forwarded-For"] != "203.0.113.9,127.0.0.1" || got["X-Envoy-Internal"] != "true" {
		t.Errorf("gateway: x-forwarded-for %q x-envoy-internal %q, want \"203.0.113.9,127.0.0.1\" and true",
			got["X-Forwarded-For"], got["X-Envoy-Internal"])
	}
	if v, ok := got["X-Envoy-External-Address"]; ok {
		t.Errorf("gateway forwarded the forged x-envoy-external-address %q", v)
	}
	got = e.headersSeen(t, e.sidecar, raw)
	if got["X-Forwarded-For"] != "203.0.113.9" || got["X-Envoy-External-Address"] != "198.51.100.1" {
		t.Errorf("sidecar: x-forwarded-for %q x-envoy-external-address %q, want them as sent",
			got["X-Forwarded-For"], got["X-Envoy-External-Address"])
	}
}

// forwardedEnv is a proxy with a gateway HCM (use_remote_address) and a
// sidecar one in front of a backend that answers with the headers it got.
type forwardedEnv struct{ gateway, sidecar string }

func newForwardedEnv(t *testing.T) *forwardedEnv {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var lines []string
		for k, vs := range r.Header {
			lines = append(lines, k+": "+strings.Join(vs, ","))
		}
		sort.Strings(lines)
		_, _ = io.WriteString(w, strings.Join(lines, "\n"))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	gp, sp := freePort(t), freePort(t)
	gw := &hcmv3.HttpConnectionManager{StatPrefix: "gateway", UseRemoteAddress: wrapperspb.Bool(true),
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads(), RouteConfigName: "fwd"}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &routerv3.Router{})}}}}
	newEnv(t, resources(
		[]types.Resource{
			listenerOf(t, "gateway", "127.0.0.1", gp, true, &listenerv3.Filter{Name: "envoy.filters.network.http_connection_manager",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, gw)}}),
			listenerOf(t, "sidecar", "127.0.0.1", sp, true, hcmFilter(t, "fwd")),
		},
		[]types.Resource{&routev3.RouteConfiguration{Name: "fwd", VirtualHosts: []*routev3.VirtualHost{
			{Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{routeTo("/", "echo")}}}}},
		[]types.Resource{edsCluster("echo")},
		[]types.Resource{cla("echo", ln.Addr().String())},
	))
	return &forwardedEnv{gateway: hostPort(gp), sidecar: hostPort(sp)}
}

// headersSeen sends raw to addr and returns the request headers the backend
// got.
func (e *forwardedEnv) headersSeen(t *testing.T, addr, raw string) map[string]string {
	t.Helper()
	resps, bodies, _ := rawExchange(t, addr, raw, 1)
	if len(resps) != 1 || resps[0].StatusCode != 200 {
		t.Fatalf("got %d responses %v, want one 200", len(resps), bodies)
	}
	out := map[string]string{}
	for _, l := range strings.Split(bodies[0], "\n") {
		if k, v, ok := strings.Cut(l, ": "); ok {
			out[k] = v
		}
	}
	return out
}

// limitedHCM is an HCM with RDS rds and the given head limits.
func limitedHCM(t *testing.T, rds string, kb, count uint32) *listenerv3.Filter {
	hcm := &hcmv3.HttpConnectionManager{StatPrefix: "limited",
		RouteSpecifier:            &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads(), RouteConfigName: rds}},
		MaxRequestHeadersKb:       wrapperspb.UInt32(kb),
		CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{MaxHeadersCount: wrapperspb.UInt32(count)},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &routerv3.Router{})}}}}
	return &listenerv3.Filter{Name: "envoy.filters.network.http_connection_manager",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, hcm)}}
}

package proxy_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// This file sends hostile HTTP/1.1 byte for byte through a running proxy and
// asserts what the client and the backend see: request targets that look
// like an authority, request smuggling framings, and NUL in the path.

// recorder is a backend that remembers every request it served.
type recorder struct {
	addr string
	mu   sync.Mutex
	seen []string // "METHOD TARGET host=HOST"
}

func startRecorder(t *testing.T, h2 bool) *recorder {
	t.Helper()
	rec := &recorder{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		line := r.Method + " " + r.RequestURI + " host=" + r.Host
		rec.mu.Lock()
		rec.seen = append(rec.seen, line)
		rec.mu.Unlock()
		_, _ = io.WriteString(w, line)
	})}
	if h2 {
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return rec
}

func (r *recorder) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

// rawExchange writes raw to a new connection to addr and reads the
// responses until the proxy closes the connection (or n responses, when the
// connection stays open); closed tells whether the proxy closed it.
func rawExchange(t *testing.T, addr, raw string, n int) (resps []*http.Response, bodies []string, closed bool) {
	t.Helper()
	c := dialTCP(t, addr)
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for len(resps) < n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return resps, bodies, true
			}
			t.Fatalf("read response %d: %v", len(resps)+1, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resps, bodies = append(resps, resp), append(bodies, string(b))
	}
	// n responses read: closed if the next read ends the connection.
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	_, err := br.Peek(1)
	return resps, bodies, errors.Is(err, io.EOF)
}

// hostileEnv is a proxy with a gateway-style listener (no path
// normalization) and an inbound-style one (Istio's DECODE_AND_MERGE_SLASHES,
// as the generators set it), routing Host "h2.example" to an HTTP/2 backend
// and everything else to an HTTP/1.1 backend.
type hostileEnv struct {
	plain, normalized string // listener addresses
	h1, h2            *recorder
}

func newHostileEnv(t *testing.T) *hostileEnv {
	t.Helper()
	h := &hostileEnv{h1: startRecorder(t, false), h2: startRecorder(t, true)}
	pp, np := freePort(t), freePort(t)
	rc := &routev3.RouteConfiguration{Name: "hostile", VirtualHosts: []*routev3.VirtualHost{
		{Name: "h2", Domains: []string{"h2.example"}, Routes: []*routev3.Route{routeTo("/", "h2")}},
		{Name: "h1", Domains: []string{"*"}, Routes: []*routev3.Route{routeTo("/", "h1")}},
	}}
	newEnv(t, resources(
		[]types.Resource{
			listenerOf(t, "gateway", "127.0.0.1", pp, true, hcmFilter(t, "hostile")),
			listenerOf(t, "inbound|"+itoa(np), "127.0.0.1", np, true, normalizingHCM(t, "hostile")),
		},
		[]types.Resource{rc},
		[]types.Resource{edsCluster("h1"), h2Cluster("h2")},
		[]types.Resource{cla("h1", h.h1.addr), cla("h2", h.h2.addr)},
	))
	h.plain, h.normalized = hostPort(pp), hostPort(np)
	return h
}

// TestHostileTargets: a target that starts with "//" is a path, never an
// authority: the backend sees it as a path and the Host the client sent, on
// the lean HTTP/1.1 client (GET), the Transport (POST with a body) and
// HTTP/2 upstream; under merge_slashes it is merged like any path.
func TestHostileTargets(t *testing.T) {
	h := newHostileEnv(t)
	cases := []struct {
		name, addr, raw, want string
		backend               *recorder
	}{
		{"GET through the lean client", h.plain,
			"GET //evil.example/x HTTP/1.1\r\nHost: echo.prod\r\nConnection: close\r\n\r\n",
			"GET //evil.example/x host=echo.prod", h.h1},
		{"GET with a query", h.plain,
			"GET //evil.example/x?a=1 HTTP/1.1\r\nHost: echo.prod\r\nConnection: close\r\n\r\n",
			"GET //evil.example/x?a=1 host=echo.prod", h.h1},
		{"POST through the Transport", h.plain,
			"POST //evil.example/x HTTP/1.1\r\nHost: echo.prod\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
			"POST //evil.example/x host=echo.prod", h.h1},
		{"HTTP/2 upstream", h.plain,
			"GET //evil.example/x HTTP/1.1\r\nHost: h2.example\r\nConnection: close\r\n\r\n",
			"GET //evil.example/x host=h2.example", h.h2},
		{"three slashes", h.plain,
			"GET ///evil.example/x HTTP/1.1\r\nHost: echo.prod\r\nConnection: close\r\n\r\n",
			"GET ///evil.example/x host=echo.prod", h.h1},
		{"merge_slashes listener", h.normalized,
			"GET //evil.example/x HTTP/1.1\r\nHost: echo.prod\r\nConnection: close\r\n\r\n",
			"GET /evil.example/x host=echo.prod", h.h1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resps, bodies, _ := rawExchange(t, tc.addr, tc.raw, 1)
			if len(resps) != 1 || resps[0].StatusCode != 200 || bodies[0] != tc.want {
				t.Fatalf("got %d responses %v, want 200 %q", len(resps), bodies, tc.want)
			}
			for _, s := range tc.backend.requests() {
				if strings.Contains(s, "host=evil.example") {
					t.Fatalf("backend saw authority evil.example: %q", s)
				}
			}
		})
	}
}

// TestSmuggling: Content-Length with Transfer-Encoding: chunked, and
// differing Content-Lengths, are answered 400 and the connection closed, so
// what a Content-Length front end took for body never runs as a request;
// honest keep-alive traffic (chunked and Content-Length bodies, pipelined)
// is untouched.
func TestSmuggling(t *testing.T) {
	h := newHostileEnv(t)
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: echo.prod\r\n\r\n"
	cases := []struct {
		name, raw string
	}{
		{"CL.TE", "POST /a HTTP/1.1\r\nHost: echo.prod\r\nContent-Length: " + itoa(5+len(smuggled)) +
			"\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
		{"TE.CL", "POST /a HTTP/1.1\r\nHost: echo.prod\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" +
			"2c\r\n" + smuggled + "\r\n0\r\n\r\n"},
		{"CL.TE after a good request", "GET /first HTTP/1.1\r\nHost: echo.prod\r\n\r\n" +
			"POST /a HTTP/1.1\r\nHost: echo.prod\r\nContent-Length: " + itoa(5+len(smuggled)) +
			"\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
		{"differing Content-Lengths", "POST /a HTTP/1.1\r\nHost: echo.prod\r\nContent-Length: 0\r\nContent-Length: " +
			itoa(len(smuggled)) + "\r\n\r\n" + smuggled},
	}
	for _, tc := range cases {
		for _, addr := range []string{h.plain, h.normalized} {
			t.Run(tc.name, func(t *testing.T) {
				before := len(h.h1.requests())
				resps, bodies, closed := rawExchange(t, addr, tc.raw, 3)
				if !closed {
					t.Error("connection kept open")
				}
				last := len(resps) - 1
				if last < 0 || resps[last].StatusCode != 400 {
					t.Fatalf("responses %v, want the last one 400", bodies)
				}
				for _, s := range h.h1.requests()[before:] {
					if strings.Contains(s, "/smuggled") || strings.HasPrefix(s, "POST /a") {
						t.Fatalf("backend served %q", s)
					}
				}
			})
		}
	}
	t.Run("honest keep-alive", func(t *testing.T) {
		raw := "POST /chunked HTTP/1.1\r\nHost: echo.prod\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" +
			"POST /length HTTP/1.1\r\nHost: echo.prod\r\nContent-Length: 5\r\n\r\nhello" +
			"GET /last HTTP/1.1\r\nHost: echo.prod\r\n\r\n"
		resps, bodies, closed := rawExchange(t, h.plain, raw, 3)
		want := []string{"POST /chunked host=echo.prod", "POST /length host=echo.prod", "GET /last host=echo.prod"}
		if len(resps) != 3 || closed || strings.Join(bodies, "|") != strings.Join(want, "|") {
			t.Fatalf("got %v (closed %v), want %v on one open connection", bodies, closed, want)
		}
	})
}

// TestNULInPath: %00 in the path is 400 on every listener, normalizing or
// not; other escapes keep the listener's documented handling.
func TestNULInPath(t *testing.T) {
	h := newHostileEnv(t)
	for _, addr := range []string{h.plain, h.normalized} {
		for _, target := range []string{"/adm%00in", "/a/%00", "/%00?x=1"} {
			resps, bodies, _ := rawExchange(t, addr, "GET "+target+" HTTP/1.1\r\nHost: echo.prod\r\nConnection: close\r\n\r\n", 1)
			if len(resps) != 1 || resps[0].StatusCode != 400 || bodies[0] != "Bad Request" {
				t.Errorf("%s %s: got %v, want 400 Bad Request", addr, target, bodies)
			}
		}
	}
	for _, s := range h.h1.requests() {
		if strings.Contains(s, "%00") {
			t.Fatalf("backend served %q", s)
		}
	}
	// Escaped slashes: kept on the plain listener, unescaped under
	// UNESCAPE_AND_FORWARD; a %00 in the query is no path.
	for _, tc := range []struct{ addr, target, want string }{
		{h.plain, "/a%2Fb", "GET /a%2Fb host=echo.prod"},
		{h.normalized, "/a%2Fb", "GET /a/b host=echo.prod"},
		{h.plain, "/q?x=%00", "GET /q?x=%00 host=echo.prod"},
	} {
		resps, bodies, _ := rawExchange(t, tc.addr, "GET "+tc.target+" HTTP/1.1\r\nHost: echo.prod\r\nConnection: close\r\n\r\n", 1)
		if len(resps) != 1 || resps[0].StatusCode != 200 || bodies[0] != tc.want {
			t.Errorf("%s %s: got %v, want %q", tc.addr, tc.target, bodies, tc.want)
		}
	}
}

// normalizingHCM is an HCM with RDS rds and the path options the generators
// set on inbound listeners (Istio's DECODE_AND_MERGE_SLASHES).
func normalizingHCM(t *testing.T, rds string) *listenerv3.Filter {
	hcm := &hcmv3.HttpConnectionManager{StatPrefix: "inbound",
		RouteSpecifier:               &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads(), RouteConfigName: rds}},
		NormalizePath:                wrapperspb.Bool(true),
		MergeSlashes:                 true,
		PathWithEscapedSlashesAction: hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD,
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &routerv3.Router{})}}}}
	return &listenerv3.Filter{Name: "envoy.filters.network.http_connection_manager",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, hcm)}}
}

// TestBadTransferCoding: an obfuscated Transfer-Encoding is refused before
// any byte reaches the backend (501 for a coding other than one "chunked",
// as Envoy answers; 400 for a control character around it), and a chunked
// body with an invalid chunk size is 400 (Envoy's codec error, flag DPE),
// not an upstream failure; the connection is closed either way, so what
// follows never runs as a request.
func TestBadTransferCoding(t *testing.T) {
	h := newHostileEnv(t)
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: echo.prod\r\n\r\n"
	cases := []struct {
		name, te, chunk string
		want            int
		reachesBackend  bool // the head was sound: it was forwarded before the body broke
	}{
		{"xchunked", "xchunked", "0", 501, false},
		{"chunked, identity", "chunked, identity", "0", 501, false},
		{"gzip, chunked", "gzip, chunked", "0", 501, false},
		{"chunked with a parameter", "chunked;q=1", "0", 501, false},
		{"vertical tab before chunked", "\x0bchunked", "0", 400, false},
		{"vertical tab after chunked", "chunked\x0b", "0", 400, false},
		{"chunk size 0x5", "chunked", "0x5", 400, true},
		{"negative chunk size", "chunked", "-1", 400, true},
		{"chunk size over 64 bits", "chunked", "fffffffffffffffff", 400, true},
		{"space inside the chunk size", "chunked", "5 5", 400, true},
		{"NUL before the chunk size", "chunked", "\x005", 400, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.h1.requests())
			raw := "POST /a HTTP/1.1\r\nHost: echo.prod\r\nTransfer-Encoding: " + tc.te + "\r\n\r\n" +
				tc.chunk + "\r\nhello\r\n0\r\n\r\n" + smuggled
			resps, bodies, closed := rawExchange(t, h.plain, raw, 2)
			if len(resps) != 1 || resps[0].StatusCode != tc.want || !closed {
				t.Fatalf("got %d responses %q (closed %v), want one %d and the connection closed", len(resps), bodies, closed, tc.want)
			}
			served := h.h1.requests()[before:]
			for _, s := range served {
				if strings.Contains(s, "/smuggled") {
					t.Fatalf("backend served %q", s)
				}
			}
			if !tc.reachesBackend && len(served) != 0 {
				t.Fatalf("backend served %v", served)
			}
		})
	}
}

package extauthz_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"go.uber.org/goleak"

	"github.com/bowline-mesh/bowline/internal/proxy/authz"
	"github.com/bowline-mesh/bowline/internal/proxy/extauthz"
	"github.com/bowline-mesh/bowline/internal/proxy/extauthz/authztest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// addrs is a Dialer from cluster names to addresses.
type addrs map[string]string

func (a addrs) DialCluster(ctx context.Context, cluster string) (net.Conn, error) {
	addr, ok := a[cluster]
	if !ok {
		return nil, errors.New("cluster " + cluster + " not found")
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

func exact(t *testing.T, names ...string) []authz.StringMatcher {
	t.Helper()
	var out []authz.StringMatcher
	for _, n := range names {
		m, err := authz.CompileStringMatcher(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: n}, IgnoreCase: true}, "m")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func request(hdr map[string]string) *extauthz.Request {
	h := http.Header{}
	for k, v := range hdr {
		h.Set(k, v)
	}
	return &extauthz.Request{ID: "rid-1", Method: "GET", Host: "echo.prod.svc.cluster.local:8080", Path: "/hello?x=1", Scheme: "http",
		Protocol: "HTTP/1.1", Headers: h, Size: -1, Source: netip.MustParseAddrPort("127.0.0.1:40000"),
		Destination: netip.MustParseAddrPort("127.0.0.1:8080"), SourcePrincipal: "spiffe://cluster.local/ns/prod/sa/frontend",
		DestinationPrincipal: "spiffe://cluster.local/ns/prod/sa/echo"}
}

func TestGRPCCheck(t *testing.T) {
	srv, err := authztest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	pool := extauthz.NewPool(addrs{"authz": srv.GRPCAddr()})
	defer pool.Close()
	f := pool.Filter(&extauthz.Config{Protocol: extauthz.GRPC, Cluster: "authz", Authority: "ext-authz.foo.svc.cluster.local", Timeout: 5 * time.Second})

	t.Run("allowed with the header, ok_response headers set on the request", func(t *testing.T) {
		d := f.Check(context.Background(), request(map[string]string{"x-ext-authz": "allow", "cookie": "a=b"}))
		if !d.Allow || d.Status != extauthz.OK {
			t.Fatalf("decision %+v, want allowed", d)
		}
		want := map[string]string{authztest.ResultHeader: authztest.ResultAllowed, authztest.OverrideHeader: authztest.OverrideGRPCValue}
		if len(d.SetHeaders) != 2 || d.SetHeaders[0].Value != want[d.SetHeaders[0].Key] || d.SetHeaders[1].Value != want[d.SetHeaders[1].Key] {
			t.Fatalf("set headers %v, want %v", d.SetHeaders, want)
		}
		checks := srv.Checks()
		h := checks[len(checks)-1].GetAttributes().GetRequest().GetHttp()
		if h.GetPath() != "/hello?x=1" || h.GetQuery() != "x=1" || h.GetMethod() != "GET" || h.GetHost() != "echo.prod.svc.cluster.local:8080" ||
			h.GetHeaders()[":path"] != "/hello?x=1" || h.GetHeaders()["cookie"] != "a=b" || h.GetId() != "rid-1" || h.GetProtocol() != "HTTP/1.1" {
			t.Fatalf("check http attributes %v", h)
		}
		src := checks[len(checks)-1].GetAttributes().GetSource()
		if src.GetPrincipal() != "spiffe://cluster.local/ns/prod/sa/frontend" || src.GetAddress().GetSocketAddress().GetPortValue() != 40000 {
			t.Fatalf("check source %v", src)
		}
	})
	t.Run("denied without it: 403, the sample's body and headers", func(t *testing.T) {
		d := f.Check(context.Background(), request(nil))
		if d.Allow || d.Status != extauthz.Denied || d.Code != http.StatusForbidden || d.Body != authztest.DenyBody {
			t.Fatalf("decision %+v", d)
		}
		if len(d.ResponseHeaders) != 2 || d.ResponseHeaders[0] != (extauthz.Header{Key: authztest.ResultHeader, Value: authztest.ResultDenied}) {
			t.Fatalf("response headers %v", d.ResponseHeaders)
		}
	})
	t.Run("allowed by the source principal's service account", func(t *testing.T) {
		r := request(nil)
		r.SourcePrincipal = "spiffe://cluster.local/ns/prod/sa/a"
		if d := f.Check(context.Background(), r); !d.Allow {
			t.Fatalf("decision %+v, want allowed", d)
		}
	})
}

func TestHTTPCheck(t *testing.T) {
	srv, err := authztest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	pool := extauthz.NewPool(addrs{"authz": srv.HTTPAddr()})
	defer pool.Close()
	cfg := &extauthz.Config{Protocol: extauthz.HTTP, Cluster: "authz", Timeout: 5 * time.Second, PathPrefix: "/check",
		AllowedHeaders:  exact(t, "x-ext-authz"),
		UpstreamHeaders: exact(t, authztest.ResultHeader), ClientHeaders: exact(t, authztest.ResultHeader),
		HeadersToAdd: []extauthz.Header{{Key: "x-added", Value: "1"}}}
	f := pool.Filter(cfg)

	t.Run("allowed: only allowed and default headers sent, upstream headers copied", func(t *testing.T) {
		d := f.Check(context.Background(), request(map[string]string{"x-ext-authz": "allow", "cookie": "a=b", "authorization": "Bearer t"}))
		if !d.Allow || len(d.SetHeaders) != 1 || d.SetHeaders[0] != (extauthz.Header{Key: authztest.ResultHeader, Value: authztest.ResultAllowed}) {
			t.Fatalf("decision %+v", d)
		}
		checks, _ := srv.HTTPChecks()
		c := checks[len(checks)-1]
		if c.Method != "GET" || c.URL.RequestURI() != "/check/hello?x=1" || c.Host != "echo.prod.svc.cluster.local:8080" {
			t.Fatalf("check request %s %s host %s", c.Method, c.URL.RequestURI(), c.Host)
		}
		if c.Header.Get("cookie") != "" || c.Header.Get("authorization") != "Bearer t" || c.Header.Get("x-added") != "1" || c.Header.Get("content-length") != "0" && c.ContentLength != 0 {
			t.Fatalf("check headers %v", c.Header)
		}
	})
	t.Run("denied: the service's status, body and allowed client headers", func(t *testing.T) {
		d := f.Check(context.Background(), request(map[string]string{"x-ext-authz": "deny"}))
		if d.Allow || d.Code != http.StatusForbidden || d.Body != authztest.DenyBody {
			t.Fatalf("decision %+v", d)
		}
		for _, h := range d.ResponseHeaders {
			if h.Key == authztest.OverrideHeader {
				t.Fatalf("header %s not in allowed_client_headers was sent: %v", h.Key, d.ResponseHeaders)
			}
		}
		if len(d.ResponseHeaders) != 1 || d.ResponseHeaders[0].Value != authztest.ResultDenied {
			t.Fatalf("response headers %v", d.ResponseHeaders)
		}
	})
}

func TestCheckFailures(t *testing.T) {
	fail5xx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer fail5xx.Close()
	block := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(block)
	down, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downAddr := down.Addr().String()
	_ = down.Close()
	pool := extauthz.NewPool(addrs{"5xx": fail5xx.Listener.Addr().String(), "slow": slow.Listener.Addr().String(), "down": downAddr})
	defer pool.Close()
	cases := []struct {
		name     string
		cfg      extauthz.Config
		allow    bool
		code     int
		failOpen bool
	}{
		{"grpc service down, fail closed: 403", extauthz.Config{Protocol: extauthz.GRPC, Cluster: "down"}, false, 403, false},
		{"grpc service down, status_on_error 503", extauthz.Config{Protocol: extauthz.GRPC, Cluster: "down", StatusOnError: 503}, false, 503, false},
		{"grpc service down, fail open", extauthz.Config{Protocol: extauthz.GRPC, Cluster: "down", FailureModeAllow: true}, true, 0, true},
		{"http 5xx is an error", extauthz.Config{Protocol: extauthz.HTTP, Cluster: "5xx", StatusOnError: 500}, false, 500, false},
		{"http 5xx with fail open", extauthz.Config{Protocol: extauthz.HTTP, Cluster: "5xx", FailureModeAllow: true}, true, 0, true},
		{"http timeout", extauthz.Config{Protocol: extauthz.HTTP, Cluster: "slow", Timeout: 50 * time.Millisecond}, false, 403, false},
		{"unknown cluster", extauthz.Config{Protocol: extauthz.HTTP, Cluster: "nope"}, false, 403, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if cfg.Timeout == 0 {
				cfg.Timeout = 5 * time.Second
			}
			d := pool.Filter(&cfg).Check(context.Background(), request(nil))
			if d.Status != extauthz.Error || d.Allow != tc.allow || d.FailedOpen != tc.failOpen || (!tc.allow && d.Code != tc.code) || d.Err == nil {
				t.Fatalf("decision %+v, want error with allow=%v code=%d", d, tc.allow, tc.code)
			}
		})
	}
}

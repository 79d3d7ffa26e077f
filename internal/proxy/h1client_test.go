package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// rawUpstream answers every request on a connection with "ok", then, when
// closeAfter is set, closes the connection (a keep-alive peer that went away
// while the proxy held the connection idle).
func rawUpstream(t *testing.T, closeAfter bool) (addr string, conns *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns = new(atomic.Int32)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					body := "ok " + req.Method + " " + req.RequestURI + " " + req.Host + " " + req.Header.Get("X-Test")
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+itoa(len(body))+"\r\n\r\n"+body)
					if closeAfter {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), conns
}

func newTestH1Pool() *h1pool {
	return newTestH1PoolWith(xdsconfig.ConnLimits{IdleTimeout: time.Hour})
}

func newTestH1PoolWith(l xdsconfig.ConnLimits) *h1pool {
	c := newCluster(&xdsconfig.Cluster{Name: "c", ConnectTimeout: time.Second,
		Limits: xdsconfig.Limits{MaxConnections: 1024}, Conn: l}, nil, newH1Bufs(), "cluster.local")
	return c.pools[nil].lean
}

// TestH1PoolConnLimits: common_http_protocol_options retire connections
// after max_requests_per_connection responses, after idle_timeout idle and
// past max_connection_duration.
func TestH1PoolConnLimits(t *testing.T) {
	for _, tc := range []struct {
		name      string
		limits    xdsconfig.ConnLimits
		wantConns int32
	}{
		{"unlimited", xdsconfig.ConnLimits{}, 1},
		{"max_requests_per_connection 2", xdsconfig.ConnLimits{MaxRequests: 2}, 3},
		{"max_requests_per_connection 1", xdsconfig.ConnLimits{MaxRequests: 1}, 5},
		{"idle_timeout passed", xdsconfig.ConnLimits{IdleTimeout: time.Nanosecond}, 5},
		{"max_connection_duration passed", xdsconfig.ConnLimits{MaxDuration: time.Nanosecond}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, conns := rawUpstream(t, false)
			hp := newTestH1PoolWith(tc.limits)
			defer hp.close()
			for range 5 {
				resp, err := hp.roundTrip(context.Background(), &h1req{method: http.MethodGet, authority: "svc:80",
					path: "/p", header: http.Header{"X-Test": {"v"}}, addr: addr})
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if got := conns.Load(); got != tc.wantConns {
				t.Errorf("5 requests used %d upstream connections, want %d", got, tc.wantConns)
			}
		})
	}
}

func TestH1Pool(t *testing.T) {
	for _, tc := range []struct {
		name       string
		closeAfter bool
		method     string
		wantConns  int32
		wantErr    bool
	}{
		{"keep-alive reuses one connection", false, http.MethodGet, 1, false},
		{"idle connection closed by upstream: GET retried on a new one", true, http.MethodGet, 3, false},
		{"idle connection closed by upstream: POST not retried", true, http.MethodPost, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, conns := rawUpstream(t, tc.closeAfter)
			hp := newTestH1Pool()
			defer hp.close()
			var lastErr error
			for i := 0; i < 3; i++ {
				if i > 0 {
					time.Sleep(20 * time.Millisecond) // let the upstream's close arrive
				}
				resp, err := hp.roundTrip(context.Background(), &h1req{method: tc.method, authority: "svc:80",
					path: "/p", rawQuery: "a=1", header: http.Header{"X-Test": {"v"}}, addr: addr})
				if err != nil {
					lastErr = err
					break
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if want := "ok " + tc.method + " /p?a=1 svc:80 v"; string(b) != want {
					t.Fatalf("body %q, want %q", b, want)
				}
			}
			if (lastErr != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", lastErr, tc.wantErr)
			}
			if got := conns.Load(); got != tc.wantConns {
				t.Errorf("upstream saw %d connections, want %d", got, tc.wantConns)
			}
		})
	}
}

func TestH1PoolContextEndsExchange(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			_, _ = io.Copy(io.Discard, c) // never answers
		}
	}()
	hp := newTestH1Pool()
	defer hp.close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = hp.roundTrip(ctx, &h1req{method: http.MethodGet, authority: "svc", path: "/", addr: ln.Addr().String()})
	if err != context.DeadlineExceeded {
		t.Fatalf("error %v, want context.DeadlineExceeded", err)
	}
	if n := hp.open[ln.Addr().String()]; n != 0 {
		t.Errorf("%d connections still counted open", n)
	}
}

func TestWriteH1RequestRejectsBadHeaders(t *testing.T) {
	for _, h := range []http.Header{{"X-A": {"a\r\nInjected: 1"}}, {"Bad Name": {"v"}}} {
		var b strings.Builder
		w := bufio.NewWriter(&b)
		if err := writeH1Request(w, &h1req{method: "GET", authority: "a", path: "/", header: h}); err != errBadHeader {
			t.Errorf("%v: error %v, want errBadHeader", h, err)
		}
	}
}

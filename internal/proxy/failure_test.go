package proxy_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// hijackClose answers by closing the connection, optionally after a partial
// response.
func hijackClose(w http.ResponseWriter, partial string) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	if partial != "" {
		_, _ = brw.WriteString(partial)
		_ = brw.Flush()
	}
	conn.Close()
}

// TestRetriesAndResets: retry_on reset, retriable-4xx and 5xx with a body
// that must be replayed (chunked), URX when exhausted, UC when the upstream
// dies mid-response, DC when the client goes away.
func TestRetriesAndResets(t *testing.T) {
	var resetN, conflictN, chunkedN atomic.Int64
	bk := startBackend(t, "bk", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/reset":
			if resetN.Add(1) == 1 {
				hijackClose(w, "")
				return
			}
		case "/conflict":
			if conflictN.Add(1) == 1 {
				w.WriteHeader(409)
				return
			}
		case "/chunked":
			if chunkedN.Add(1) < 3 {
				w.WriteHeader(503)
				return
			}
		case "/always503":
			w.WriteHeader(503)
			return
		case "/midway":
			hijackClose(w, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
			return
		case "/hang":
			<-r.Context().Done()
			return
		}
		w.Header().Set("x-attempt", r.Header.Get("x-envoy-attempt-count"))
		_, _ = w.Write(append([]byte("ok:"), body...))
	})
	lp := freePort(t)
	retry := func(prefix, on string, n uint32) *routev3.Route {
		r := routeTo(prefix, "bk")
		r.GetRoute().RetryPolicy = &routev3.RetryPolicy{RetryOn: on, NumRetries: wrapperspb.UInt32(n)}
		return r
	}
	e := newEnv(t, resources(
		[]types.Resource{listenerOf(t, "l", "127.0.0.1", lp, true, hcmFilter(t, "r"))},
		[]types.Resource{routeConfig("r", retry("/reset", "reset", 2), retry("/conflict", "retriable-4xx", 2),
			retry("/chunked", "5xx", 3), retry("/always503", "5xx", 2), routeTo("/", "bk"))},
		[]types.Resource{edsCluster("bk")}, []types.Resource{cla("bk", bk.addr)}))
	m := &mesh{px: e.px}
	addr := hostPort(lp)
	client := &http.Client{}
	defer client.CloseIdleConnections()
	do := func(t *testing.T, method, path string, body io.Reader) (*http.Response, string, error) {
		req, _ := http.NewRequest(method, "http://"+addr+path, body)
		resp, err := client.Do(req)
		if err != nil {
			return nil, "", err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b), err
	}
	t.Run("reset is retried", func(t *testing.T) {
		resp, body, err := do(t, "GET", "/reset", nil)
		if err != nil || resp.StatusCode != 200 || resp.Header.Get("x-attempt") != "2" {
			t.Fatalf("got %v %q %v", resp, body, err)
		}
	})
	t.Run("retriable 4xx", func(t *testing.T) {
		resp, _, err := do(t, "GET", "/conflict", nil)
		if err != nil || resp.StatusCode != 200 || resp.Header.Get("x-attempt") != "2" {
			t.Fatalf("got %v %v", resp, err)
		}
	})
	t.Run("chunked body replayed", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			for i := 0; i < 3; i++ {
				_, _ = io.WriteString(pw, "part"+itoa(i)+";")
			}
			pw.Close()
		}()
		resp, body, err := do(t, "POST", "/chunked", pr)
		if err != nil || resp.StatusCode != 200 || body != "ok:part0;part1;part2;" || resp.Header.Get("x-attempt") != "3" {
			t.Fatalf("got %v %q %v", resp, body, err)
		}
	})
	t.Run("body over the buffer limit is not retried", func(t *testing.T) {
		chunkedN.Store(0)
		big := strings.Repeat("x", 100<<10)
		resp, _, err := do(t, "POST", "/chunked", io.MultiReader(strings.NewReader(big)))
		if err != nil || resp.StatusCode != 503 {
			t.Fatalf("got %v %v, want the first 503 (no retry)", resp, err)
		}
		if n := chunkedN.Load(); n != 1 {
			t.Errorf("backend saw %d attempts, want 1", n)
		}
	})
	t.Run("exhausted is URX", func(t *testing.T) {
		resp, _, err := do(t, "GET", "/always503", nil)
		if err != nil || resp.StatusCode != 503 {
			t.Fatalf("got %v %v", resp, err)
		}
		if f := m.lastLog(t, "/always503")["response_flags"]; f != "URX" {
			t.Errorf("flags %v, want URX", f)
		}
	})
	t.Run("upstream closes mid-response is UC", func(t *testing.T) {
		_, _, err := do(t, "GET", "/midway", nil)
		if err == nil {
			t.Fatalf("client read a complete body from a broken upstream")
		}
		if f := m.lastLog(t, "/midway")["response_flags"]; f != "UC" {
			t.Errorf("flags %v, want UC", f)
		}
	})
	t.Run("client goes away is DC", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/hang", nil)
		if _, err := client.Do(req); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		if f := m.lastLog(t, "/hang")["response_flags"]; f != "DC" {
			t.Errorf("flags %v, want DC", f)
		}
	})
}

// TestDrain: on shutdown (SIGTERM in the command cancels Run's context) and
// on a removed listener, in-flight requests finish, new connections are
// refused, and Run returns nil (exit 0).
func TestDrain(t *testing.T) {
	release, started := make(chan struct{}), make(chan struct{}, 4)
	bk := slowBackend(t, "slow", release, started)
	l1, l2 := freePort(t), freePort(t)
	res := func(ports ...int) map[resource.Type][]types.Resource {
		var ls []types.Resource
		for _, p := range ports {
			ls = append(ls, listenerOf(t, "l"+itoa(p), "127.0.0.1", p, true, hcmFilter(t, "r")))
		}
		return resources(ls, []types.Resource{routeConfig("r", routeTo("/", "bk"))},
			[]types.Resource{edsCluster("bk")}, []types.Resource{cla("bk", bk.addr)})
	}
	e := newEnv(t, res(l1, l2))
	inflight := func(addr string) chan string {
		ch := make(chan string, 1)
		go func() {
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := c.Get("http://" + addr + "/")
			if err != nil {
				ch <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			ch <- itoa(resp.StatusCode) + " " + string(b)
		}()
		return ch
	}
	refused := func(addr string) bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	}
	t.Run("removed listener", func(t *testing.T) {
		ch := inflight(hostPort(l2))
		<-started
		e.cp.push(t, res(l1))
		waitFor(t, "listener 2 closed", func() bool { return refused(hostPort(l2)) })
		release <- struct{}{}
		if got := <-ch; got != "200 slow" {
			t.Fatalf("in-flight request on removed listener: %s", got)
		}
	})
	t.Run("shutdown", func(t *testing.T) {
		ch := inflight(hostPort(l1))
		<-started
		done := make(chan struct{})
		go func() { e.px.stop(); close(done) }() // stop fails the test if Run returns an error
		waitFor(t, "listener closed", func() bool { return refused(hostPort(l1)) })
		close(release)
		if got := <-ch; got != "200 slow" {
			t.Fatalf("in-flight request during shutdown: %s", got)
		}
		<-done
	})
}

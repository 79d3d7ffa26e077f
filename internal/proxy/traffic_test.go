package proxy_test

import (
	"bufio"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// oneRoute runs a proxy whose listener routes everything to cluster "up"
// (edited by cmut) with endpoints addrs; rmut edits the route; extra maps
// further cluster names to one backend each.
func oneRoute(t *testing.T, rmut func(*routev3.Route), cmut func(*clusterv3.Cluster), extra map[string]string, addrs ...string) (*env, string) {
	t.Helper()
	lp := freePort(t)
	r := routeTo("/", "up")
	if rmut != nil {
		rmut(r)
	}
	cs := []types.Resource{clusterWith("up", cmut)}
	es := []types.Resource{cla("up", addrs...)}
	for name, a := range extra {
		cs = append(cs, edsCluster(name))
		es = append(es, cla(name, a))
	}
	e := newEnv(t, resources([]types.Resource{listenerOf(t, "l", "127.0.0.1", lp, true, hcmFilter(t, "r", "cors", "fault"))},
		[]types.Resource{routeConfig("r", r)}, cs, es))
	return e, hostPort(lp)
}

// TestUpgradeAndContinue: WebSocket-style Upgrade is relayed both ways, and
// Expect: 100-continue gets the interim response before the body is sent.
func TestUpgradeAndContinue(t *testing.T) {
	bk := startBackend(t, "ws", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "websocket" {
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			_ = brw.Flush()
			line, _ := brw.ReadString('\n')
			_, _ = conn.Write([]byte("upstream got " + line))
			return
		}
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(append([]byte("body:"), b...))
	})
	_, addr := oneRoute(t, nil, nil, nil, bk.addr)
	t.Run("websocket upgrade", func(t *testing.T) {
		c := dialTCP(t, addr)
		defer c.Close()
		_, _ = io.WriteString(c, "GET /chat HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "websocket" {
			t.Fatalf("upgrade response: %v %v", resp, err)
		}
		_, _ = io.WriteString(c, "frame-1\n")
		got, _ := io.ReadAll(br)
		if string(got) != "upstream got frame-1\n" {
			t.Fatalf("relayed %q", got)
		}
	})
	t.Run("100-continue", func(t *testing.T) {
		c := dialTCP(t, addr)
		defer c.Close()
		_, _ = io.WriteString(c, "POST /up HTTP/1.1\r\nHost: app\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
		br := bufio.NewReader(c)
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
			t.Fatalf("interim response %q %v", line, err)
		}
		_, _ = br.ReadString('\n') // blank line after the 100
		_, _ = io.WriteString(c, "hello")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != "body:hello" {
			t.Fatalf("got %d %q", resp.StatusCode, b)
		}
	})
}

// slowBackend answers after release is closed.
func slowBackend(t *testing.T, name string, release <-chan struct{}, started chan<- struct{}) *backend {
	return startBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
		if started != nil {
			started <- struct{}{}
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		_, _ = io.WriteString(w, name)
	})
}

// TestCircuitBreakerOverflow: with max_requests 1, a second concurrent
// request gets 503 UO while the first completes.
func TestCircuitBreakerOverflow(t *testing.T) {
	release, started := make(chan struct{}), make(chan struct{}, 1)
	bk := slowBackend(t, "slow", release, started)
	e, addr := oneRoute(t, nil, func(c *clusterv3.Cluster) {
		c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			MaxRequests: wrapperspb.UInt32(1), MaxPendingRequests: wrapperspb.UInt32(1), MaxConnections: wrapperspb.UInt32(1)}}}
	}, nil, bk.addr)
	client := &http.Client{}
	defer client.CloseIdleConnections()
	first := make(chan int, 1)
	go func() {
		resp, err := client.Get("http://" + addr + "/first")
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	<-started
	resp, body := get(t, client, addr, "app", "/second", nil)
	close(release)
	if resp.StatusCode != 503 || !strings.Contains(body, "overflow") {
		t.Fatalf("second request: %d %q, want 503 overflow", resp.StatusCode, body)
	}
	if code := <-first; code != 200 {
		t.Fatalf("first request: %d", code)
	}
	e.waitMetric(t, `response_code="503",response_flags="UO"`)
	// Envoy's /stats text form, as Istio's circuit-breaking task reads it.
	stats := e.admin(t, "/stats?filter=upstream_rq_pending")
	if want := "cluster.up.upstream_rq_pending_overflow: 1\n"; stats != want {
		t.Errorf("/stats?filter=upstream_rq_pending = %q, want %q", stats, want)
	}
	if all := e.admin(t, "/stats"); !strings.Contains(all, "cluster.up.upstream_rq_total: ") || !strings.Contains(all, "cluster.up.membership_healthy: 1\n") {
		t.Errorf("/stats lacks the cluster's request and membership counters:\n%s", all)
	}
}

// TestCircuitBreakerMaxRetries: with max_retries 1, of ten requests that
// all fail at once only one retries at a time: a retry holds its slot until
// its attempt ends, and the others answer with the first attempt's 503.
func TestCircuitBreakerMaxRetries(t *testing.T) {
	var retried, inRetry, maxInRetry atomic.Int64
	bk := startBackend(t, "failing", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("x-envoy-attempt-count") != "" {
			retried.Add(1)
			n := inRetry.Add(1)
			defer inRetry.Add(-1)
			for m := maxInRetry.Load(); n > m && !maxInRetry.CompareAndSwap(m, n); m = maxInRetry.Load() {
			}
		}
		time.Sleep(50 * time.Millisecond) // keep concurrent retries overlapping
		w.WriteHeader(503)
	})
	_, addr := oneRoute(t, func(r *routev3.Route) {
		r.GetRoute().RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx", NumRetries: wrapperspb.UInt32(1),
			RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Millisecond)}}
	}, func(c *clusterv3.Cluster) {
		c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			MaxRetries: wrapperspb.UInt32(1)}}}
	}, nil, bk.addr)
	client := &http.Client{}
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := client.Get("http://" + addr + "/"); err == nil {
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	if retried.Load() == 0 || maxInRetry.Load() != 1 {
		t.Errorf("with max_retries 1: %d retried attempts, at most %d at once; want at least one and never more than 1 at once",
			retried.Load(), maxInRetry.Load())
	}
}

// TestOutlierDetection: a backend answering 500 is ejected after 3
// consecutive 5xx, gets no traffic while ejected, and returns after the
// base ejection time.
func TestOutlierDetection(t *testing.T) {
	var badHits atomic.Int64
	bad := startBackend(t, "bad", func(w http.ResponseWriter, r *http.Request) {
		badHits.Add(1)
		w.WriteHeader(500)
	})
	good := startBackend(t, "good", nil)
	e, addr := oneRoute(t, nil, func(c *clusterv3.Cluster) {
		c.OutlierDetection = &clusterv3.OutlierDetection{Consecutive_5Xx: wrapperspb.UInt32(3),
			Interval: durationpb.New(50 * time.Millisecond), BaseEjectionTime: durationpb.New(600 * time.Millisecond),
			MaxEjectionPercent: wrapperspb.UInt32(50)}
	}, nil, bad.addr, good.addr)
	client := &http.Client{}
	defer client.CloseIdleConnections()
	for i := 0; i < 10; i++ {
		get(t, client, addr, "app", "/", nil)
	}
	if n := badHits.Load(); n != 3 {
		t.Fatalf("bad backend got %d requests before ejection, want 3", n)
	}
	if s := e.admin(t, "/clusters"); !strings.Contains(s, "up::"+bad.addr+"::health_flags::/failed_outlier_check") {
		t.Fatalf("/clusters does not show the ejection:\n%s", s)
	}
	for i := 0; i < 10; i++ {
		if resp, body := get(t, client, addr, "app", "/", nil); resp.StatusCode != 200 || body != "good" {
			t.Fatalf("while ejected: %d %q", resp.StatusCode, body)
		}
	}
	time.Sleep(700 * time.Millisecond)
	if s := e.admin(t, "/clusters"); !strings.Contains(s, "up::"+bad.addr+"::health_flags::healthy") {
		t.Fatalf("host not back after base ejection time:\n%s", s)
	}
	for i := 0; i < 4; i++ {
		get(t, client, addr, "app", "/", nil)
	}
	if n := badHits.Load(); n < 4 {
		t.Errorf("returned host got no traffic (hits %d)", n)
	}
}

// TestMirror: a mirrored request reaches the shadow cluster with "-shadow"
// added to the authority; the shadow's answer (a 500, held back until every
// main response has arrived) is never waited for; the sampled percentage is
// respected.
func TestMirror(t *testing.T) {
	var mu sync.Mutex
	var hosts []string
	var bodies []string
	release := make(chan struct{})
	shadow := startBackend(t, "shadow", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		hosts = append(hosts, r.Host)
		bodies = append(bodies, string(b))
		mu.Unlock()
		<-release
		w.WriteHeader(500)
	})
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	bk := startBackend(t, "main", nil)
	_, addr := oneRoute(t, func(r *routev3.Route) {
		r.GetRoute().RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "shadow",
			RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 50}}}}
	}, nil, map[string]string{"shadow": shadow.addr}, bk.addr)
	client := &http.Client{}
	defer client.CloseIdleConnections()
	const n = 200
	for i := 0; i < n; i++ {
		req, _ := http.NewRequest("POST", "http://"+addr+"/m", strings.NewReader("payload"))
		req.Host = "reviews:9080"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "main" {
			t.Fatalf("main response %d %q", resp.StatusCode, b)
		}
	}
	close(release)
	released = true
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(hosts)
	}
	waitFor(t, "the mirrored requests", func() bool { return count() >= n*30/100 })
	mu.Lock()
	defer mu.Unlock()
	if len(hosts) > n*70/100 {
		t.Errorf("shadow got %d of %d, want about 50%%", len(hosts), n)
	}
	if hosts[0] != "reviews-shadow:9080" || bodies[0] != "payload" {
		t.Errorf("shadow saw host %q body %q, want reviews-shadow:9080 payload", hosts[0], bodies[0])
	}
}

// TestRingHash: every hash key kind keeps a client on one backend, and
// different keys spread over the backends, with the ring and with Maglev.
func TestRingHash(t *testing.T) {
	for _, lb := range []clusterv3.Cluster_LbPolicy{clusterv3.Cluster_RING_HASH, clusterv3.Cluster_MAGLEV} {
		t.Run(lb.String(), func(t *testing.T) { testHashLB(t, lb) })
	}
}

func testHashLB(t *testing.T, lb clusterv3.Cluster_LbPolicy) {
	// The backends set a cookie of their own, which must not replace the
	// generated one.
	cookieBackend := func(name string) *backend {
		return startBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Set-Cookie", "app=1")
			_, _ = io.WriteString(w, name)
		})
	}
	b1, b2, b3 := cookieBackend("b1"), cookieBackend("b2"), cookieBackend("b3")
	lp := freePort(t)
	hashRoute := func(prefix string, hp *routev3.RouteAction_HashPolicy) *routev3.Route {
		r := routeTo(prefix, "ring")
		r.GetRoute().HashPolicy = []*routev3.RouteAction_HashPolicy{hp}
		return r
	}
	newEnv(t, resources(
		[]types.Resource{listenerOf(t, "l", "127.0.0.1", lp, true, hcmFilter(t, "r"))},
		[]types.Resource{routeConfig("r",
			hashRoute("/header", &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: "x-user"}}}),
			hashRoute("/cookie", &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: "session", Ttl: durationpb.New(time.Minute)}}}),
			hashRoute("/source", &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}}),
			hashRoute("/query", &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_QueryParameter_{QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: "u"}}}),
		)},
		[]types.Resource{clusterWith("ring", func(c *clusterv3.Cluster) { c.LbPolicy = lb })},
		[]types.Resource{cla("ring", b1.addr, b2.addr, b3.addr)}))
	addr := hostPort(lp)
	client := &http.Client{}
	defer client.CloseIdleConnections()
	sticky := func(t *testing.T, key string, send func(key string) string) string {
		t.Helper()
		first := send(key)
		for i := 0; i < 10; i++ {
			if got := send(key); got != first {
				t.Fatalf("key %q moved from %s to %s", key, first, got)
			}
		}
		return first
	}
	spread := func(t *testing.T, send func(key string) string) {
		t.Helper()
		seen := map[string]bool{}
		for i := 0; i < 30; i++ {
			seen[sticky(t, "user-"+itoa(i), send)] = true
		}
		if len(seen) < 2 {
			t.Errorf("30 keys all went to %v", seen)
		}
	}
	t.Run("header", func(t *testing.T) {
		spread(t, func(k string) string {
			_, b := get(t, client, addr, "app", "/header", map[string]string{"x-user": k})
			return b
		})
	})
	t.Run("query parameter", func(t *testing.T) {
		spread(t, func(k string) string { _, b := get(t, client, addr, "app", "/query?u="+k, nil); return b })
	})
	t.Run("cookie", func(t *testing.T) {
		spread(t, func(k string) string {
			_, b := get(t, client, addr, "app", "/cookie", map[string]string{"Cookie": "session=" + k})
			return b
		})
		resp, first := get(t, client, addr, "app", "/cookie", nil)
		var ck string
		for _, c := range resp.Header.Values("Set-Cookie") {
			if strings.HasPrefix(c, "session=") {
				ck = c
			}
		}
		if !strings.Contains(ck, "Max-Age=60") || !slices.Contains(resp.Header.Values("Set-Cookie"), "app=1") {
			t.Fatalf("Set-Cookie = %q, want the upstream's app=1 and a generated session cookie with Max-Age=60", resp.Header.Values("Set-Cookie"))
		}
		v := strings.SplitN(strings.TrimPrefix(ck, "session="), ";", 2)[0]
		for i := 0; i < 10; i++ {
			if _, b := get(t, client, addr, "app", "/cookie", map[string]string{"Cookie": "session=" + v}); b != first {
				t.Fatalf("generated cookie not sticky: %s then %s", first, b)
			}
		}
	})
	t.Run("source ip", func(t *testing.T) {
		sticky(t, "", func(string) string {
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			_, b := get(t, c, addr, "app", "/source", nil)
			return b
		})
	})
}

package proxy

import (
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// outlierCluster is a cluster of hosts a, b, c, d with outlier detection
// ejecting on the first 5xx, on a clock the test moves.
func outlierCluster(t *testing.T, od xdsconfig.OutlierDetection) (*cluster, *time.Duration) {
	t.Helper()
	od.Consecutive5xx = 1
	c := newCluster(&xdsconfig.Cluster{Name: "c", ConnectTimeout: time.Second, Outlier: &od,
		Limits: xdsconfig.Limits{MaxConnections: 1024}}, nil, newH1Bufs(), "cluster.local")
	t.Cleanup(c.close)
	var clock time.Duration
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	c.now = func() int64 { return epoch + int64(clock) }
	c.setEndpoints(&xdsconfig.ClusterLoadAssignment{ClusterName: "c", Endpoints: []xdsconfig.Endpoint{
		{Address: "a:80", Weight: 1}, {Address: "b:80", Weight: 1}, {Address: "c:80", Weight: 1}, {Address: "d:80", Weight: 1}}})
	return c, &clock
}

// TestOutlierSweep follows one host through ejections on an injected clock:
// it returns at the first sweep after base x multiplier, a repeat offence
// doubles the time, and intervals spent healthy let the multiplier decay.
func TestOutlierSweep(t *testing.T) {
	c, clock := outlierCluster(t, xdsconfig.OutlierDetection{Interval: 10 * time.Second,
		BaseEjectionTime: 30 * time.Second, MaxEjectionTime: 300 * time.Second, MaxEjectionPercent: 100})
	a := c.hosts.Load().hosts[0]
	at := func(d time.Duration) { *clock = d; c.sweep(c.now()) }
	want := func(when string, ejected bool) {
		t.Helper()
		if a.ejected() != ejected {
			t.Fatalf("%s: ejected = %v, want %v (multiplier %d)", when, a.ejected(), ejected, a.outlier.backoff)
		}
	}

	c.report(a, 500, false)
	want("after a 5xx", true)
	at(29 * time.Second)
	want("29s into a 30s ejection", true)
	at(30 * time.Second)
	want("at the sweep 30s after ejection", false)

	*clock = 31 * time.Second
	c.report(a, 503, false) // second offence: 2 x 30s
	at(90 * time.Second)
	want("59s into a 60s ejection", true)
	at(91 * time.Second)
	want("60s after the second ejection", false)

	// Healthy for two intervals: the multiplier decays 2 -> 0, so the next
	// ejection is one base time again.
	at(101 * time.Second)
	at(111 * time.Second)
	if a.outlier.backoff != 0 {
		t.Fatalf("multiplier after two healthy intervals = %d, want 0", a.outlier.backoff)
	}
	*clock = 112 * time.Second
	c.report(a, 500, false)
	at(141 * time.Second)
	want("29s into an ejection after decay", true)
	at(142 * time.Second)
	want("30s into an ejection after decay", false)
}

// TestOutlierMaxEjectionTime: the multiplier stops growing and the
// ejection is capped at max_ejection_time.
func TestOutlierMaxEjectionTime(t *testing.T) {
	c, clock := outlierCluster(t, xdsconfig.OutlierDetection{Interval: time.Second,
		BaseEjectionTime: 30 * time.Second, MaxEjectionTime: 60 * time.Second, MaxEjectionPercent: 100})
	a := c.hosts.Load().hosts[0]
	for i := range 6 {
		c.report(a, 500, false)
		start := *clock
		for a.ejected() {
			*clock += time.Second
			c.sweep(c.now())
		}
		if got, want := *clock-start, min(time.Duration(i+1)*30*time.Second, 60*time.Second); got != want {
			t.Fatalf("ejection %d lasted %v, want %v", i+1, got, want)
		}
	}
	if a.outlier.backoff != 3 {
		t.Errorf("multiplier after six ejections = %d, want 3 (it grows while base x it < max + base)", a.outlier.backoff)
	}
}

// TestOutlierMaxEjectionPercent: with 50% of four hosts, a third 5xx host
// stays in; when one returns, another can go.
func TestOutlierMaxEjectionPercent(t *testing.T) {
	c, clock := outlierCluster(t, xdsconfig.OutlierDetection{Interval: time.Second,
		BaseEjectionTime: 10 * time.Second, MaxEjectionTime: 300 * time.Second, MaxEjectionPercent: 50})
	hs := c.hosts.Load().hosts
	c.report(hs[0], 500, false)
	*clock = 5 * time.Second
	c.report(hs[1], 500, false)
	c.report(hs[2], 500, false)
	if !hs[0].ejected() || !hs[1].ejected() || hs[2].ejected() {
		t.Fatalf("ejected = %v %v %v, want the first two only", hs[0].ejected(), hs[1].ejected(), hs[2].ejected())
	}
	*clock = 10 * time.Second
	c.sweep(c.now())
	c.report(hs[2], 500, false)
	if hs[0].ejected() || !hs[2].ejected() {
		t.Fatalf("after the first returned: ejected = %v %v, want it back and the third out", hs[0].ejected(), hs[2].ejected())
	}
	// The state survives an EDS update that keeps the hosts.
	c.setEndpoints(&xdsconfig.ClusterLoadAssignment{ClusterName: "c", Endpoints: []xdsconfig.Endpoint{
		{Address: "a:80", Weight: 1}, {Address: "b:80", Weight: 2}, {Address: "c:80", Weight: 1}, {Address: "d:80", Weight: 1}}})
	if nhs := c.hosts.Load().hosts; !nhs[1].ejected() || !nhs[2].ejected() || c.nEjected != 2 {
		t.Errorf("after an EDS update: b, c ejected = %v %v, count %d; want both and 2", nhs[1].ejected(), nhs[2].ejected(), c.nEjected)
	}
}

// srCluster is a cluster of n hosts with success-rate ejection only.
func srCluster(t *testing.T, n int, sr xdsconfig.SuccessRateEjection) *cluster {
	t.Helper()
	od := &xdsconfig.OutlierDetection{Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second,
		MaxEjectionTime: 300 * time.Second, MaxEjectionPercent: 100, SuccessRate: &sr}
	c := newCluster(&xdsconfig.Cluster{Name: "c", ConnectTimeout: time.Second, Outlier: od,
		Limits: xdsconfig.Limits{MaxConnections: 1024}}, nil, newH1Bufs(), "cluster.local")
	t.Cleanup(c.close)
	c.now = func() int64 { return 0 }
	var eps []xdsconfig.Endpoint
	for i := range n {
		eps = append(eps, xdsconfig.Endpoint{Address: string(rune('a'+i)) + ":80", Weight: 1})
	}
	c.setEndpoints(&xdsconfig.ClusterLoadAssignment{ClusterName: "c", Endpoints: eps})
	return c
}

// serve reports total attempts for h of which failed were 5xx.
func serve(c *cluster, h *host, total, failed int) {
	for i := range total {
		code := 200
		if i < failed {
			code = 503
		}
		c.report(h, code, false)
	}
}

// TestOutlierSuccessRate: at the sweep, a host whose success rate is below
// mean - 1.9 stdev of the hosts with enough requests is ejected; too few
// such hosts, or too few requests, and nobody is; every interval starts
// its counts afresh.
func TestOutlierSuccessRate(t *testing.T) {
	defaults := xdsconfig.SuccessRateEjection{Enforcing: 100, MinimumHosts: 5, RequestVolume: 100, StdevFactor: 1900}
	t.Run("the outlier goes", func(t *testing.T) {
		c := srCluster(t, 5, defaults)
		hs := c.hosts.Load().hosts
		for _, h := range hs[:4] {
			serve(c, h, 100, 0)
		}
		// Rates 100,100,100,100,50: mean 90, stdev 20, threshold 52.
		serve(c, hs[4], 100, 50)
		c.sweep(c.now())
		for i, h := range hs {
			if h.ejected() != (i == 4) {
				t.Errorf("host %s ejected = %v", h.addr, h.ejected())
			}
		}
		if c.srEjections.Load() != 1 {
			t.Errorf("success-rate ejections %d, want 1", c.srEjections.Load())
		}
	})
	t.Run("within the spread stays", func(t *testing.T) {
		c := srCluster(t, 5, defaults)
		hs := c.hosts.Load().hosts
		// Rates 100,90,100,90,85: mean 93, stdev 6, threshold 81.6.
		for i, failed := range []int{0, 10, 0, 10, 15} {
			serve(c, hs[i], 100, failed)
		}
		c.sweep(c.now())
		for _, h := range hs {
			if h.ejected() {
				t.Errorf("host %s ejected", h.addr)
			}
		}
	})
	t.Run("too few hosts with enough requests", func(t *testing.T) {
		c := srCluster(t, 5, defaults)
		hs := c.hosts.Load().hosts
		for _, h := range hs[:3] {
			serve(c, h, 100, 0)
		}
		serve(c, hs[3], 99, 0) // one short of the volume
		serve(c, hs[4], 100, 100)
		c.sweep(c.now())
		if hs[4].ejected() {
			t.Error("ejected with 4 hosts over the request volume (minimum 5)")
		}
		// The next interval starts from zero: 1 more request each is not
		// the volume either.
		for _, h := range hs {
			serve(c, h, 1, 1)
		}
		c.sweep(c.now())
		if hs[4].ejected() {
			t.Error("counts carried into the next interval")
		}
	})
	t.Run("tuned minimums", func(t *testing.T) {
		c := srCluster(t, 3, xdsconfig.SuccessRateEjection{Enforcing: 100, MinimumHosts: 3, RequestVolume: 10, StdevFactor: 1000})
		hs := c.hosts.Load().hosts
		serve(c, hs[0], 10, 0)
		serve(c, hs[1], 10, 0)
		serve(c, hs[2], 10, 5) // mean 83.3, stdev 23.6, threshold 59.8
		c.sweep(c.now())
		if !hs[2].ejected() || hs[0].ejected() || hs[1].ejected() {
			t.Errorf("ejected %v %v %v, want only the third", hs[0].ejected(), hs[1].ejected(), hs[2].ejected())
		}
	})
	t.Run("not enforced", func(t *testing.T) {
		c := srCluster(t, 5, xdsconfig.SuccessRateEjection{Enforcing: 0, MinimumHosts: 5, RequestVolume: 100, StdevFactor: 1900})
		hs := c.hosts.Load().hosts
		for _, h := range hs[:4] {
			serve(c, h, 100, 0)
		}
		serve(c, hs[4], 100, 100)
		c.sweep(c.now())
		if hs[4].ejected() {
			t.Error("ejected with enforcing_success_rate 0")
		}
	})
}

// TestPanicThreshold: with fewer healthy hosts than the threshold, picks
// spread over all hosts, ejected and EDS-unhealthy ones included (Envoy's
// panic mode); at 0, only healthy hosts are picked and none is "no
// healthy upstream".
func TestPanicThreshold(t *testing.T) {
	picked := func(c *cluster) map[string]bool {
		seen := map[string]bool{}
		for range 200 {
			if h := c.pick(nil, "", false); h != nil {
				seen[h.addr] = true
			}
		}
		return seen
	}
	for _, tc := range []struct {
		name      string
		threshold float64
		ejected   int // of four hosts
		unhealthy int // EDS-unhealthy, after the ejected ones
		want      int // hosts picked
		panics    bool
	}{
		{"half healthy is no panic at 50", 50, 2, 0, 2, false},
		{"a quarter healthy panics at 50", 50, 2, 1, 4, true},
		{"all ejected panics at 50", 50, 4, 0, 4, true},
		{"a quarter healthy at 0", 0, 2, 1, 1, false},
		{"none healthy at 0", 0, 4, 0, 0, false},
		{"three quarters healthy panics at 80", 80, 1, 0, 4, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(&xdsconfig.Cluster{Name: "c", ConnectTimeout: time.Second, PanicThreshold: tc.threshold,
				Outlier: &xdsconfig.OutlierDetection{Interval: time.Hour, BaseEjectionTime: time.Hour, MaxEjectionPercent: 100},
				Limits:  xdsconfig.Limits{MaxConnections: 1024}}, nil, newH1Bufs(), "cluster.local")
			t.Cleanup(c.close)
			var eps []xdsconfig.Endpoint
			for i := range 4 {
				ep := xdsconfig.Endpoint{Address: string(rune('a'+i)) + ":80", Weight: 1}
				if i >= tc.ejected && i < tc.ejected+tc.unhealthy {
					ep.Health = xdsconfig.HealthUnhealthy
				}
				eps = append(eps, ep)
			}
			c.setEndpoints(&xdsconfig.ClusterLoadAssignment{ClusterName: "c", Endpoints: eps})
			for _, h := range c.hosts.Load().hosts[:tc.ejected] {
				c.eject(h)
			}
			if got := picked(c); len(got) != tc.want {
				t.Errorf("picked %v, want %d hosts", got, tc.want)
			}
			if (c.panics.Load() > 0) != tc.panics {
				t.Errorf("lb_healthy_panic %d", c.panics.Load())
			}
		})
	}
}

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

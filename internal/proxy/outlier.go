package proxy

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// Outlier detection as Envoy runs it: consecutive failures eject a host at
// once (report, in cluster.go); a sweep every interval returns the hosts
// whose ejection time has passed and lets the ejection multiplier of hosts
// that stayed healthy decay, so a host ejected once long ago is not punished
// as a repeat offender.
//
// Success-rate ejection (on unless enforcing_success_rate is 0; istiod
// turns it off) runs at each sweep over the requests of the interval.
//
// A host is ejected for base_ejection_time times its multiplier, capped at
// max_ejection_time (or base_ejection_time when that is larger). The
// multiplier grows by one per ejection while base times it stays below
// max + base, and shrinks by one per sweep in which the host has been back
// for at least an interval.

// hostOutlier is a host's outlier state, guarded by its cluster's odMu.
type hostOutlier struct {
	backoff     uint32 // the ejection multiplier
	ejectedAt   int64  // unix nanos of the current or last ejection
	unejectedAt int64  // unix nanos of the last return, 0 if never ejected
}

// eject takes h out of load balancing, unless it is out already or the
// cluster's max_ejection_percent forbids it (Envoy always lets one host go).
func (c *cluster) eject(h *host) {
	c.odMu.Lock()
	defer c.odMu.Unlock()
	c.ejectLocked(h)
}

func (c *cluster) ejectLocked(h *host) bool {
	od := c.cfg.Outlier
	hs := c.hosts.Load()
	if h.ejected() || hs == nil {
		return false
	}
	if c.nEjected > 0 && (c.nEjected+1)*100 > int(od.MaxEjectionPercent)*len(hs.hosts) {
		return false
	}
	o := &h.outlier
	if uint64(o.backoff)*uint64(od.BaseEjectionTime) < uint64(od.MaxEjectionTime+od.BaseEjectionTime) {
		o.backoff++
	}
	o.ejectedAt = c.now()
	h.isEjected.Store(true)
	h.consec5xx.Store(0)
	h.consecGW.Store(0)
	c.countLocked(hs)
	return true
}

// countLocked recounts the ejected and the healthy hosts of hs, the
// cluster's current hosts.
func (c *cluster) countLocked(hs *hostSet) {
	ejected, healthy := 0, int64(0)
	for _, h := range hs.hosts {
		switch {
		case h.ejected():
			ejected++
		case h.health.Routable():
			healthy++
		}
	}
	c.nEjected = ejected
	c.healthy.Store(healthy)
}

// sweep is one interval of the outlier detector at time now: ejections
// that have run their time end, then success-rate ejection judges the
// interval's requests.
func (c *cluster) sweep(now int64) {
	od := c.cfg.Outlier
	c.odMu.Lock()
	defer c.odMu.Unlock()
	hs := c.hosts.Load()
	if hs == nil {
		return
	}
	limit := max(od.MaxEjectionTime, od.BaseEjectionTime)
	for _, h := range hs.hosts {
		o := &h.outlier
		if !h.ejected() {
			if o.unejectedAt != 0 && now-o.unejectedAt >= int64(od.Interval) && o.backoff > 0 {
				o.backoff--
			}
			continue
		}
		if now-o.ejectedAt >= int64(min(time.Duration(o.backoff)*od.BaseEjectionTime, limit)) {
			h.isEjected.Store(false)
			o.unejectedAt = now
		}
	}
	c.countLocked(hs)
	if od.SuccessRate != nil {
		c.successRateLocked(hs, od.SuccessRate)
	}
}

// successRateLocked ejects the hosts whose success rate in the interval
// just ended lies below mean - factor x stdev of the hosts with enough
// requests, when there are enough of those (Envoy's success-rate outlier
// detection), and starts the next interval's counts.
func (c *cluster) successRateLocked(hs *hostSet, sr *xdsconfig.SuccessRateEjection) {
	type sample struct {
		h    *host
		rate float64
	}
	var samples []sample
	for _, h := range hs.hosts {
		total, ok := h.srTotal.Swap(0), h.srOK.Swap(0)
		if h.ejected() || total == 0 || total < int64(sr.RequestVolume) {
			continue
		}
		samples = append(samples, sample{h, 100 * float64(ok) / float64(total)})
	}
	if len(samples) == 0 || len(samples) < int(sr.MinimumHosts) {
		return
	}
	var sum float64
	for _, s := range samples {
		sum += s.rate
	}
	mean := sum / float64(len(samples))
	var sq float64
	for _, s := range samples {
		sq += (s.rate - mean) * (s.rate - mean)
	}
	threshold := mean - float64(sr.StdevFactor)/1000*math.Sqrt(sq/float64(len(samples)))
	for _, s := range samples {
		if s.rate < threshold && rand.N(uint32(100)) < sr.Enforcing && c.ejectLocked(s.h) {
			c.srEjections.Add(1)
		}
	}
}

// sweepEvery runs the sweep each interval until stop is closed.
func (c *cluster) sweepEvery(interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.sweep(c.now())
		case <-stop:
			return
		}
	}
}

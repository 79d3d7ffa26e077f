package proxy

import "time"

// Outlier detection as Envoy runs it: consecutive failures eject a host at
// once (report, in cluster.go); a sweep every interval returns the hosts
// whose ejection time has passed and lets the ejection multiplier of hosts
// that stayed healthy decay, so a host ejected once long ago is not punished
// as a repeat offender.
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
	od := c.cfg.Outlier
	c.odMu.Lock()
	defer c.odMu.Unlock()
	hs := c.hosts.Load()
	if h.ejected() || hs == nil {
		return
	}
	if c.nEjected > 0 && (c.nEjected+1)*100 > int(od.MaxEjectionPercent)*len(hs.hosts) {
		return
	}
	o := &h.outlier
	if uint64(o.backoff)*uint64(od.BaseEjectionTime) < uint64(od.MaxEjectionTime+od.BaseEjectionTime) {
		o.backoff++
	}
	o.ejectedAt = c.now()
	h.isEjected.Store(true)
	c.nEjected++
	h.consec5xx.Store(0)
	h.consecGW.Store(0)
}

// sweep is one interval of the outlier detector at time now.
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
			c.nEjected--
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

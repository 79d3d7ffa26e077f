package proxy

import (
	"sync/atomic"
	"time"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// retryLimit is how many retries of c may be outstanding now: max_retries,
// or with a retry_budget budget_percent of the active requests (of the
// requests started in the last budget_interval when it is set), never fewer
// than min_retry_concurrency, as Envoy's retry budget.
func (c *cluster) retryLimit() int64 {
	rb := c.cfg.Limits.RetryBudget
	if rb == nil {
		return int64(c.cfg.Limits.MaxRetries)
	}
	base := c.active.Load()
	if c.started != nil {
		base = c.started.count(c.now())
	}
	return max(int64(rb.MinConcurrency), int64(rb.Percent*float64(base)/100))
}

// noteStarted counts one upstream request for the budget interval.
func (c *cluster) noteStarted() {
	if c.started != nil {
		c.started.add(c.now())
	}
}

// windowSlots is how many slots a budget interval is cut into.
const windowSlots = 10

// requestWindow counts the requests started in the last interval, in
// windowSlots slots of interval/windowSlots: a request counts for between
// 0.9 and 1 interval. Lock-free; a count racing with a slot's reuse may be
// lost, which only ever makes the budget smaller by that request.
type requestWindow struct {
	slot  int64 // nanoseconds
	slots [windowSlots]struct {
		epoch atomic.Int64 // the slot number (time / slot) the count is for
		n     atomic.Int64
	}
}

func newRequestWindow(interval time.Duration) *requestWindow {
	return &requestWindow{slot: max(int64(interval)/windowSlots, 1)}
}

func (w *requestWindow) add(now int64) {
	e := now / w.slot
	s := &w.slots[e%windowSlots]
	if old := s.epoch.Load(); old != e && s.epoch.CompareAndSwap(old, e) {
		s.n.Store(0)
	}
	s.n.Add(1)
}

func (w *requestWindow) count(now int64) int64 {
	e := now / w.slot
	var n int64
	for i := range w.slots {
		s := &w.slots[i]
		if d := e - s.epoch.Load(); d >= 0 && d < windowSlots {
			n += s.n.Load()
		}
	}
	return n
}

// newRetryWindow is the request window of a cluster whose retry budget has
// an interval, else nil.
func newRetryWindow(l xdsconfig.Limits) *requestWindow {
	if l.RetryBudget == nil || l.RetryBudget.Interval <= 0 {
		return nil
	}
	return newRequestWindow(l.RetryBudget.Interval)
}

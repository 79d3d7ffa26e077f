package server

import (
	"context"
	"time"
)

// debouncer merges bursts of change events: a push starts once no event
// arrived for quiet, or once max has passed since the first event of the
// burst, whichever is first (Istio's PILOT_DEBOUNCE_AFTER and
// PILOT_DEBOUNCE_MAX). Pushes never overlap: events during a push start the
// next burst.
//
// Unlike Istio, an isolated change is pushed at once when leading is set:
// the first event after an idle period — no push ended within max — starts
// its push without waiting, and the events that follow it form a burst
// debounced as above. A burst thus costs at most one more push, and a
// single change has no debounce delay. Idle is measured in max, not quiet:
// under steady churn (changes every 100 ms, quiet 30 ms) a leading push
// per quiet gap would split every batch in two pushes, each sending its
// changed resources to every stream.
//
// Settled events come from a source that already waited for quiet (the
// config directory watcher debounces file events with the same period):
// waiting again would only add latency, so a burst of settled events alone
// is pushed at once, and a mixed burst waits for quiet after its last
// unsettled event.
type debouncer struct {
	quiet, max time.Duration
	// leading pushes an isolated change at once (see above).
	leading bool
	now     func() time.Time
	// after is time.After, injectable for tests.
	after func(time.Duration) <-chan time.Time
}

// burst describes the events merged into one push.
type burst struct {
	events  int
	settled int       // how many of events were settled
	first   time.Time // when the first event arrived
	last    time.Time // when the last unsettled event arrived (zero if none)
	// leading: the burst's first event came after an idle period, so it
	// is pushed without waiting.
	leading bool
}

// run calls push for each burst of events on in until ctx ends.
func (d *debouncer) run(ctx context.Context, in, settled <-chan struct{}, push func(burst)) {
	var (
		b     burst
		timer <-chan time.Time
		// pushed is when the last push ended (zero before the first).
		pushed time.Time
	)
	add := func(isSettled bool) {
		now := d.now()
		if b.events == 0 {
			b.first = now
			b.leading = d.leading && (pushed.IsZero() || now.Sub(pushed) >= d.max)
		}
		b.events++
		if isSettled {
			b.settled++
		} else {
			b.last = now
		}
		timer = d.after(d.wait(now, b))
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-in:
			add(false)
		case <-settled:
			add(true)
		case <-timer:
			now := d.now()
			if w := d.wait(now, b); w > 0 {
				timer = d.after(w)
				continue
			}
			timer = nil
			done := b
			b = burst{}
			push(done)
			pushed = d.now()
		}
	}
}

// wait returns how long to wait from now until the burst may be pushed.
func (d *debouncer) wait(now time.Time, b burst) time.Duration {
	if b.settled == b.events || b.leading {
		return 0
	}
	w := b.last.Add(d.quiet).Sub(now)
	if m := b.first.Add(d.max).Sub(now); m < w {
		w = m
	}
	return max(w, 0)
}

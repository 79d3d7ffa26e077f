package server

import (
	"context"
	"time"
)

// debouncer merges bursts of change events the way Istio's discovery
// server does: a push starts once no event arrived for quiet, or once
// max has passed since the first event of the burst, whichever is first.
// Pushes never overlap: events during a push start the next burst.
//
// Settled events come from a source that already waited for quiet (the
// config directory watcher debounces file events with the same period):
// waiting again would only add latency, so a burst of settled events alone
// is pushed at once, and a mixed burst waits for quiet after its last
// unsettled event.
type debouncer struct {
	quiet, max time.Duration
	now        func() time.Time
	// after is time.After, injectable for tests.
	after func(time.Duration) <-chan time.Time
}

// burst describes the events merged into one push.
type burst struct {
	events  int
	settled int       // how many of events were settled
	first   time.Time // when the first event arrived
	last    time.Time // when the last unsettled event arrived (zero if none)
}

// run calls push for each burst of events on in until ctx ends.
func (d *debouncer) run(ctx context.Context, in, settled <-chan struct{}, push func(burst)) {
	var (
		b     burst
		timer <-chan time.Time
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-in:
			now := d.now()
			if b.events == 0 {
				b.first = now
			}
			b.events++
			b.last = now
			timer = d.after(d.wait(now, b))
		case <-settled:
			now := d.now()
			if b.events == 0 {
				b.first = now
			}
			b.events++
			b.settled++
			timer = d.after(d.wait(now, b))
		case <-timer:
			now := d.now()
			if now.Sub(b.last) < d.quiet && now.Sub(b.first) < d.max {
				timer = d.after(d.wait(now, b))
				continue
			}
			timer = nil
			done := b
			b = burst{}
			push(done)
		}
	}
}

// wait returns how long to wait from now until the burst may be pushed.
func (d *debouncer) wait(now time.Time, b burst) time.Duration {
	if b.settled == b.events {
		return 0
	}
	w := b.last.Add(d.quiet).Sub(now)
	if m := b.first.Add(d.max).Sub(now); m < w {
		w = m
	}
	return max(w, 0)
}

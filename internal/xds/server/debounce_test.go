package server

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestDebounceWait(t *testing.T) {
	t0 := time.Unix(1000, 0)
	d := &debouncer{quiet: 100 * time.Millisecond, max: time.Second}
	tests := []struct {
		name string
		now  time.Time
		b    burst
		want time.Duration
	}{
		{"single event", t0, burst{events: 1, first: t0, last: t0}, 100 * time.Millisecond},
		{"quiet period restarts", t0.Add(500 * time.Millisecond), burst{events: 5, first: t0, last: t0.Add(450 * time.Millisecond)}, 50 * time.Millisecond},
		{"max delay caps", t0.Add(950 * time.Millisecond), burst{events: 9, first: t0, last: t0.Add(950 * time.Millisecond)}, 50 * time.Millisecond},
		{"settled only", t0, burst{events: 2, settled: 2, first: t0}, 0},
		{"settled and unsettled", t0.Add(10 * time.Millisecond), burst{events: 2, settled: 1, first: t0, last: t0}, 90 * time.Millisecond},
		{"overdue", t0.Add(2 * time.Second), burst{events: 9, first: t0, last: t0.Add(2 * time.Second)}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := d.wait(tt.now, tt.b); got != tt.want {
				t.Errorf("wait = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestDebounceLeadingEdge: the first change when no push ended within max
// is pushed without waiting; a change within max of a push waits for
// quiet; with leading off every change waits.
func TestDebounceLeadingEdge(t *testing.T) {
	for _, leading := range []bool{true, false} {
		t.Run(map[bool]string{true: "leading", false: "trailing"}[leading], func(t *testing.T) {
			var (
				mu    sync.Mutex
				clock = time.Unix(1000, 0)
				waits = make(chan time.Duration, 10)
				fire  = make(chan time.Time)
			)
			// The debouncer reads the clock right after each push to note
			// when it ended; the test waits for that read (pushRead) before
			// it moves the clock on, or the move could land before it.
			pending, pushRead := false, make(chan struct{}, 1)
			now := func() time.Time {
				mu.Lock()
				defer mu.Unlock()
				if pending {
					pending = false
					pushRead <- struct{}{}
				}
				return clock
			}
			advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
			after := func(w time.Duration) <-chan time.Time {
				waits <- w
				if w == 0 {
					c := make(chan time.Time, 1)
					c <- time.Time{}
					return c
				}
				return fire
			}
			d := &debouncer{quiet: 100 * time.Millisecond, max: time.Second, leading: leading, now: now, after: after}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			in, pushes := make(chan struct{}), make(chan burst, 10)
			done := make(chan struct{})
			go func() {
				defer close(done)
				d.run(ctx, in, nil, func(b burst) {
					mu.Lock()
					pending = true
					mu.Unlock()
					pushes <- b
				})
			}()
			defer func() { cancel(); <-done }()
			expect := func(step string, wantWait time.Duration, wantLeading bool) {
				t.Helper()
				select {
				case w := <-waits:
					if w != wantWait {
						t.Fatalf("%s: waits %s, want %s", step, w, wantWait)
					}
				case <-time.After(60 * time.Second):
					t.Fatalf("%s: no wait scheduled", step)
				}
				if wantWait > 0 {
					advance(wantWait)
					fire <- time.Time{}
				}
				select {
				case b := <-pushes:
					if b.leading != wantLeading || b.events != 1 {
						t.Fatalf("%s: pushed %+v, want 1 event, leading %v", step, b, wantLeading)
					}
				case <-time.After(60 * time.Second):
					t.Fatalf("%s: no push", step)
				}
				select {
				case <-pushRead:
				case <-time.After(60 * time.Second):
					t.Fatalf("%s: the debouncer never noted when the push ended", step)
				}
			}
			quiet := 100 * time.Millisecond
			if leading {
				in <- struct{}{} // the first change ever
				expect("first change", 0, true)
				in <- struct{}{} // right after that push: the clock has not moved
				expect("change during the quiet period", quiet, false)
				advance(500 * time.Millisecond) // quiet, but a push ended within max
				in <- struct{}{}
				expect("change within max of a push", quiet, false)
				advance(10 * time.Second)
				in <- struct{}{}
				expect("change after a quiet period", 0, true)
				return
			}
			in <- struct{}{}
			expect("first change", quiet, false)
			advance(10 * time.Second)
			in <- struct{}{}
			expect("change after a quiet period", quiet, false)
		})
	}
}

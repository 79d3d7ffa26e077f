package server

import (
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

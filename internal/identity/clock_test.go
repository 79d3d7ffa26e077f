package identity

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/internal/ca"
)

// fakeClock records the waits Run asks for and fires them when told.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits chan time.Duration
	fire  chan time.Time
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, waits: make(chan time.Duration, 16), fire: make(chan time.Time)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	c.waits <- d
	return c.fire
}

// TestRetryBackoffWithFakeClock: with the CA unreachable, Run waits
// RetryInitial, doubling up to RetryMax, between attempts.
func TestRetryBackoffWithFakeClock(t *testing.T) {
	other, err := ca.New(ca.Config{})
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock(time.Now())
	a, err := New(Config{CAAddress: "127.0.0.1:1", RootCert: ca.EncodeCertificates(other.TrustBundle()...), Token: "t",
		Clock: clock, RetryInitial: time.Second, RetryMax: 10 * time.Second, RequestTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		select {
		case got := <-clock.waits:
			if got != w {
				t.Fatalf("wait %d = %s, want %s", i+1, got, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no wait %d", i+1)
		}
		if i < len(want)-1 {
			clock.fire <- clock.Now()
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if cert, _ := a.Current(); cert != nil {
		t.Fatal("certificate without a CA")
	}
}

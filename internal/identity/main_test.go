package identity

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/bowline-mesh/bowline/internal/ca"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder is a slog handler that counts messages, to observe retries.
type recorder struct {
	mu   sync.Mutex
	msgs map[string]int
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.msgs == nil {
		r.msgs = map[string]int{}
	}
	r.msgs[rec.Message]++
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }
func (r *recorder) count(msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.msgs[msg]
}

// caEnv is a real CA served on loopback.
type caEnv struct {
	ca     *ca.CA
	tokens *ca.Tokens
	addr   string
	dir    string
	stop   func()
}

// startCA runs a CA server on addr (127.0.0.1:0 for a new port) with its
// material in dir (a new root when dir is empty of CA files).
func startCA(t *testing.T, dir, addr string, c *ca.CA, tokens *ca.Tokens) *caEnv {
	t.Helper()
	if c == nil {
		var err error
		if c, err = ca.New(ca.Config{Dir: dir}); err != nil {
			t.Fatal(err)
		}
	}
	if tokens == nil {
		tokens = ca.NewTokens()
	}
	srv, err := ca.NewServer(ca.ServerConfig{Address: addr, CA: c, Authenticator: tokens})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case <-srv.Listening():
	case err := <-done:
		cancel()
		t.Fatalf("ca run: %v", err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("ca run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &caEnv{ca: c, tokens: tokens, addr: srv.Addr().String(), dir: dir, stop: stop}
}

// runAgent starts a in the background until the test ends.
func runAgent(t *testing.T, a *Agent) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent run: %v", err)
		}
	})
}

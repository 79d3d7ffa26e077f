package local

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestSupervisorRestartsCrashedProcess(t *testing.T) {
	dir := t.TempDir()
	counter := filepath.Join(dir, "runs")
	var out syncBuffer
	// Each run appends a line and exits with an error: a crashing app.
	s := newSupervisor(processSpec{
		Name:   "crasher",
		Path:   "/bin/sh",
		Args:   []string{"-c", "echo run >> " + counter + "; echo started; exit 3"},
		Output: &out,
	}, backoff{Initial: 20 * time.Millisecond, Max: 40 * time.Millisecond, Reset: time.Hour}, quietLogger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for s.Restarts() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	data, _ := os.ReadFile(counter)
	if runs := strings.Count(string(data), "run"); runs < 3 {
		t.Errorf("process ran %d times, want at least 3 (restarted after crashes)", runs)
	}
	if !strings.Contains(out.String(), "started") {
		t.Errorf("output not captured: %q", out.String())
	}
}

func TestSupervisorStopsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	// The shell starts a grandchild (sleep) and waits: stopping must end both.
	s := newSupervisor(processSpec{
		Name:   "tree",
		Path:   "/bin/sh",
		Args:   []string{"-c", "sleep 300 & echo $! > " + pidFile + "; wait"},
		Output: io.Discard,
		Grace:  2 * time.Second,
	}, defaultBackoff, quietLogger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var childPID int
	deadline := time.Now().Add(5 * time.Second)
	for childPID == 0 && time.Now().Before(deadline) {
		if data, err := os.ReadFile(pidFile); err == nil && len(bytes.TrimSpace(data)) > 0 {
			for _, c := range bytes.TrimSpace(data) {
				childPID = childPID*10 + int(c-'0')
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if childPID == 0 {
		cancel()
		<-done
		t.Fatal("grandchild never started")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	// The grandchild must be gone (signal 0 probes existence; a zombie reaped by init also counts as gone soon).
	deadline = time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(childPID, 0); err != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("grandchild %d still running after stop", childPID)
}

func TestSupervisorMissingProgram(t *testing.T) {
	s := newSupervisor(processSpec{Name: "missing", Path: "/nonexistent/app", Output: io.Discard}, defaultBackoff, quietLogger())
	err := s.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "start missing") {
		t.Fatalf("err = %v, want a start error", err)
	}
}

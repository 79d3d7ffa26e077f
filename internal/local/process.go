package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// processSpec describes a child process to supervise.
type processSpec struct {
	// Name identifies the process in logs ("reviews-v1-0", "reviews-v1-0/sidecar").
	Name string
	Path string
	Args []string
	// Env is the complete environment.
	Env []string
	Dir string
	// Output receives stdout and stderr.
	Output io.Writer
	// StopSignal is sent on shutdown (SIGTERM when zero); Grace is how long to
	// wait before SIGKILL.
	StopSignal syscall.Signal
	Grace      time.Duration
}

// backoff bounds restart delays after crashes.
type backoff struct {
	Initial, Max time.Duration
	// Reset: a process that ran this long before exiting restarts without delay growth.
	Reset time.Duration
}

var defaultBackoff = backoff{Initial: 500 * time.Millisecond, Max: 30 * time.Second, Reset: 10 * time.Second}

// supervisor runs one process and restarts it when it exits, until ctx ends.
type supervisor struct {
	spec    processSpec
	backoff backoff
	log     *slog.Logger

	mu       sync.Mutex
	pid      int
	restarts int
}

func newSupervisor(spec processSpec, b backoff, log *slog.Logger) *supervisor {
	if spec.Grace == 0 {
		spec.Grace = 10 * time.Second
	}
	if spec.StopSignal == 0 {
		spec.StopSignal = syscall.SIGTERM
	}
	return &supervisor{spec: spec, backoff: b, log: log}
}

// Restarts returns how many times the process was restarted after exiting.
func (s *supervisor) Restarts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts
}

// PID returns the current process id, 0 when not running.
func (s *supervisor) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid
}

// Run starts the process and keeps it running until ctx is done, then stops
// it (signal, grace period, SIGKILL of its whole process group).
func (s *supervisor) Run(ctx context.Context) error {
	delay := s.backoff.Initial
	for {
		started := time.Now()
		err := s.runOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("start %s: %w", s.spec.Name, err)
		}
		if time.Since(started) >= s.backoff.Reset {
			delay = s.backoff.Initial
		}
		wait := delay/2 + rand.N(delay/2+1) // jitter in [delay/2, delay]
		s.log.Info("process exited, restarting", slog.String("process", s.spec.Name), slog.String("status", exitText(err)), slog.Duration("after", wait))
		s.mu.Lock()
		s.restarts++
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		delay = min(delay*2, s.backoff.Max)
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// runOnce runs the process until it exits or ctx ends.
func (s *supervisor) runOnce(ctx context.Context) error {
	cmd := exec.Command(s.spec.Path, s.spec.Args...)
	cmd.Env = s.spec.Env
	cmd.Dir = s.spec.Dir
	cmd.Stdout = s.spec.Output
	cmd.Stderr = s.spec.Output
	// Its own process group, so stopping it also stops what it started (go run, shells).
	// Pdeathsig makes the kernel stop it if bowline itself dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return err
	}
	s.mu.Lock()
	s.pid = cmd.Process.Pid
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.pid = 0
		s.mu.Unlock()
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, s.spec.StopSignal)
	select {
	case err := <-done:
		return err
	case <-time.After(s.spec.Grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		return <-done
	}
}

package local

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

func TestLock(t *testing.T) {
	dir := t.TempDir()
	// A pid file left by a crashed run does not block.
	if err := os.WriteFile(filepath.Join(dir, LockFile), []byte("999999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	release, err := Lock(dir)
	if err != nil {
		t.Fatalf("lock over a stale pid file: %v", err)
	}
	_, err = Lock(dir)
	var are *AlreadyRunningError
	if !errors.As(err, &are) || are.PID != os.Getpid() {
		t.Fatalf("second lock: %v, want already running with our pid", err)
	}
	if want := "already running (pid " + strconv.Itoa(os.Getpid()) + ")"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if !Running(dir) {
		t.Error("Running = false while locked")
	}
	release()
	if Running(dir) {
		t.Error("Running = true after release")
	}
	release, err = Lock(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	release()
}

func TestFindRunning(t *testing.T) {
	runtime := filepath.Join(t.TempDir(), "run")
	cwd := t.TempDir()
	here := filepath.Join(cwd, ".bowline")
	other := filepath.Join(t.TempDir(), "state")
	var releases []func()
	for _, d := range []string{here, other} {
		release, err := Lock(d)
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, release)
	}
	unregister, err := register(runtime, other)
	if err != nil {
		t.Fatal(err)
	}
	defer unregister()
	if got, want := FindRunning(cwd, runtime), []string{here, other}; !slices.Equal(got, want) {
		t.Errorf("FindRunning = %v, want %v", got, want)
	}
	if got := FindRunning("", runtime); !slices.Equal(got, []string{other}) {
		t.Errorf("FindRunning without a directory = %v, want %v", got, []string{other})
	}
	// A run that ended without unregistering is dropped, and its record removed.
	releases[1]()
	if got := FindRunning("", runtime); len(got) != 0 {
		t.Errorf("FindRunning after the run ended = %v, want none", got)
	}
	if entries, _ := os.ReadDir(filepath.Join(runtime, "up")); len(entries) != 0 {
		t.Errorf("stale record left: %v", entries)
	}
	releases[0]()
}

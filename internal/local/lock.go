package local

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// LockFile is the name of the lock `bowline up` holds in its state directory
// while it runs; it contains the process id.
const LockFile = "up.lock"

// AlreadyRunningError says another `bowline up` holds the state directory.
type AlreadyRunningError struct {
	// PID is the other run's process id (0 when its lock file gives none).
	PID      int
	StateDir string
}

func (e *AlreadyRunningError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("already running (state directory %s is locked)", e.StateDir)
	}
	return fmt.Sprintf("already running (pid %d)", e.PID)
}

// Lock takes the state directory's lock for this process, or returns an
// *AlreadyRunningError naming the process that holds it. The lock is an
// advisory file lock the kernel drops when its holder exits, so a pid file
// left by a crashed run never blocks the next one. Release with the
// returned function.
func Lock(stateDir string) (release func(), err error) {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	path := filepath.Join(stateDir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if !held {
		data, _ := os.ReadFile(path)
		f.Close()
		pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
		return nil, &AlreadyRunningError{PID: pid, StateDir: stateDir}
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
	}
	return func() {
		// Empty the pid before letting go, so nobody reads a dead pid as live.
		_ = f.Truncate(0)
		f.Close()
	}, nil
}

// Running reports whether a `bowline up` holds stateDir's lock now.
func Running(stateDir string) bool {
	f, err := os.OpenFile(filepath.Join(stateDir, LockFile), os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	held, err := tryLock(f)
	if err != nil {
		return false
	}
	// Taking it means nobody had it; closing f releases it again.
	return !held
}

// A run registers its state directory in the runtime directory
// (RuntimeDir()/up/<pid>, holding the path) so that `bowline proxy-status`
// and `proxy-config` find it from anywhere on the machine.

// RuntimeDir is where running `bowline up` processes register:
// $XDG_RUNTIME_DIR/bowline, else <tmp>/bowline-<uid>.
func RuntimeDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "bowline")
	}
	return filepath.Join(os.TempDir(), "bowline-"+strconv.Itoa(os.Getuid()))
}

// register records stateDir for this process and returns the function
// that removes the record.
func register(runtimeDir, stateDir string) (func(), error) {
	dir := filepath.Join(runtimeDir, "up")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("runtime dir: %w", err)
	}
	if err := ownedPrivate(runtimeDir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(path, []byte(stateDir+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("runtime dir: %w", err)
	}
	return func() { os.Remove(path) }, nil
}

// FindRunning returns the state directories of every `bowline up` running
// on this machine for this user: dir/.bowline when one runs there (dir is
// usually the working directory; "" skips it), then those registered in
// runtimeDir, sorted, without duplicates. Records of runs that ended
// without cleaning up are removed.
func FindRunning(dir, runtimeDir string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(stateDir string) {
		if abs, err := filepath.Abs(stateDir); err == nil {
			stateDir = abs
		}
		if !seen[stateDir] {
			seen[stateDir] = true
			out = append(out, stateDir)
		}
	}
	if dir != "" && Running(filepath.Join(dir, ".bowline")) {
		add(filepath.Join(dir, ".bowline"))
	}
	if ownedPrivate(runtimeDir) != nil {
		return out
	}
	reg := filepath.Join(runtimeDir, "up")
	entries, err := os.ReadDir(reg)
	if err != nil {
		return out
	}
	var found []string
	for _, e := range entries {
		path := filepath.Join(reg, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		stateDir := strings.TrimSpace(string(data))
		if !Running(stateDir) {
			os.Remove(path) // the run ended without removing its record
			continue
		}
		found = append(found, stateDir)
	}
	sort.Strings(found)
	for _, s := range found {
		add(s)
	}
	return out
}

var errNotPrivate = errors.New("not a private directory of this user")

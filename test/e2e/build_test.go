package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Binaries are built once per test run into <repo>/bin/e2e (ignored by git).
var (
	buildOnce sync.Once
	buildErr  error
	buildOut  []byte
)

// repoRoot finds the module root from the test's working directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// binaries builds bin/e2e/bowline and the Bookinfo apps into bin/e2e/bookinfo
// and returns the directory.
func binaries(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	out := filepath.Join(root, "bin", "e2e")
	buildOnce.Do(func() {
		for _, args := range [][]string{
			{"build", "-o", filepath.Join(out, "bowline"), "./cmd/bowline"},
			{"build", "-o", filepath.Join(out, "bookinfo") + "/", "./samples/bookinfo/cmd/..."},
		} {
			cmd := exec.Command("go", args...)
			cmd.Dir = root
			buildOut, buildErr = cmd.CombinedOutput()
			if buildErr != nil {
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatalf("build: %v\n%s", buildErr, buildOut)
	}
	return out
}

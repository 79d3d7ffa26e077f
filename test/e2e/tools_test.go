package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// goTool is a real component the tests run (Jaeger, Prometheus), built from
// its Go module into ~/.cache/bowline/NAME/VERSION once per machine. The
// module is built as the main module from its downloaded source (so its own
// go.mod, replace directives included, decides the dependencies), not with
// go install.
type goTool struct {
	name, module, version string
	// pkg is the main package inside the module ("./cmd/jaeger").
	pkg string
	// tags are build tags (Prometheus: remove_all_sd leaves out the cloud
	// service discoveries the tests never use).
	tags string

	once sync.Once
	bin  string
	err  error
}

// binary returns the tool's binary, building it first if it is not cached.
func (g *goTool) binary(t *testing.T) string {
	t.Helper()
	g.once.Do(func() { g.bin, g.err = g.build(t) })
	if g.err != nil {
		t.Fatal(g.err)
	}
	return g.bin
}

func (g *goTool) build(t *testing.T) (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(home, ".cache", "bowline", g.name, g.version)
	bin := filepath.Join(dir, g.name)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	env := append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	dl := exec.Command("go", "mod", "download", "-json", g.module+"@"+g.version)
	dl.Dir, dl.Env = dir, env
	out, err := dl.Output()
	if err != nil {
		return "", fmt.Errorf("download %s@%s: %v", g.module, g.version, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return "", fmt.Errorf("download %s: no module directory in %s", g.module, out)
	}
	t.Logf("building %s %s into %s (once per machine)", g.name, g.version, dir)
	tmp := bin + ".tmp"
	args := []string{"build", "-trimpath", "-o", tmp}
	if g.tags != "" {
		args = append(args, "-tags", g.tags)
	}
	build := exec.Command("go", append(args, g.pkg)...)
	build.Dir, build.Env = mod.Dir, env
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %v\n%s", g.name, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	return bin, nil
}

// TestBuildTools builds every goTool into its cache. `make tools` (and so
// `make test`) runs it alone first, with a timeout of its own, so that a
// machine without the cache spends its build minutes outside the e2e
// package's test timeout.
func TestBuildTools(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Jaeger and Prometheus from their modules")
	}
	for _, g := range []*goTool{jaegerTool, prometheusTool} {
		t.Logf("%s %s: %s", g.name, g.version, g.binary(t))
	}
}

// runTool runs bin with args in dir ("" for the test's), stops it when the
// test ends (showing its log if the test failed), and returns once GET
// readyURL answers 200; it fails the test if the tool exits first or is
// not ready within a minute.
func runTool(t *testing.T, name, dir, readyURL, bin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	logs := &syncWriter{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("%s log:\n%s", name, tail(logs.String(), 40))
		}
	})
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(readyURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-done:
			t.Fatalf("%s exited:\n%s", name, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready (%s) after a minute:\n%s", name, readyURL, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

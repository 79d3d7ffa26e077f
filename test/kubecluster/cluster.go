// Package kubecluster gives tests the real single-node cluster that
// `make kube-up` (hack/kube) runs, through its kubeconfig and kubectl.
//
// Require decides, once per test, whether the cluster is there: with
// KUBECONFIG set (the last line of `make kube-up`, which `make test` exports)
// it checks the API server answers; without it, the test is skipped on a
// developer machine without root and CI unset, and fails everywhere else
// (CI and root always run the Kubernetes tests: `make test` brings the
// cluster up). It imports no Bowline package and no Kubernetes library.
package kubecluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The kit's fixed names and addresses (hack/kube/lib.sh).
const (
	NodeName         = "bowline-node"
	NodeIP           = "10.251.0.1"
	DNSServiceIP     = "10.96.0.10"
	PodCIDR          = "10.244.0.0/16"
	ServiceCIDR      = "10.96.0.0/16"
	GuardChain       = "BOWLINE-KUBE-GUARD"
	Bridge           = "bowkube0"
	Cgroup           = "bowline-kube"
	BookinfoHub      = "registry.istio.io/release"
	BookinfoTag      = "1.20.3"
	requireTimeout   = 10 * time.Second
	skipOrFailAdvice = "make test (as root) brings the cluster up; or eval \"$(make -s kube-up | tail -1)\" first"
)

// Cluster is a reachable cluster.
type Cluster struct {
	// Kubeconfig is the absolute path of the admin kubeconfig.
	Kubeconfig string
	// Kubectl is the kubectl binary that comes with the cluster.
	Kubectl string
}

// Require returns the cluster, skips the test (developer machine without
// root, CI unset), or fails it (CI or root without a reachable cluster).
func Require(t testing.TB) *Cluster {
	t.Helper()
	kc := os.Getenv("KUBECONFIG")
	if kc == "" {
		if os.Getenv("CI") == "" && os.Geteuid() != 0 {
			t.Skip("Kubernetes test skipped: not root and no KUBECONFIG; the test cluster (make kube-up) needs root: sudo make test runs these tests")
		}
		t.Fatalf("Kubernetes test: KUBECONFIG is not set (CI and root always run these tests): %s", skipOrFailAdvice)
	}
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("Kubernetes test: KUBECONFIG=%s but no kubectl in PATH: %s", kc, skipOrFailAdvice)
	}
	c := &Cluster{Kubeconfig: kc, Kubectl: kubectl}
	ctx, cancel := context.WithTimeout(context.Background(), requireTimeout)
	defer cancel()
	if out, err := c.Run(ctx, "get", "--raw", "/readyz"); err != nil {
		t.Fatalf("Kubernetes test: the cluster in %s does not answer (%v): %s\n%s", kc, err, skipOrFailAdvice, out)
	}
	return c
}

// Run runs kubectl with args against the cluster and returns its combined output.
func (c *Cluster) Run(ctx context.Context, args ...string) (string, error) {
	return c.RunStdin(ctx, "", args...)
}

// RunStdin is Run with stdin (e.g. a manifest for "apply -f -").
func (c *Cluster) RunStdin(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.Kubectl, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("kubectl %s: %w", strings.Join(args, " "), err)
	}
	return out.String(), err
}

// Namespace creates a namespace named after the test and deletes it (without
// waiting) when the test ends.
func (c *Cluster) Namespace(t testing.TB) string {
	t.Helper()
	name := strings.ToLower(filepath.Base(t.Name()))
	name = strings.NewReplacer("_", "-", "/", "-").Replace(name)
	if len(name) > 40 {
		name = name[:40]
	}
	name = strings.Trim(fmt.Sprintf("%s-%d", name, time.Now().UnixNano()%100000), "-")
	ctx, cancel := context.WithTimeout(context.Background(), requireTimeout)
	defer cancel()
	if out, err := c.Run(ctx, "create", "namespace", name); err != nil {
		t.Fatalf("create namespace %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), requireTimeout)
		defer cancel()
		_, _ = c.Run(ctx, "delete", "namespace", name, "--wait=false")
	})
	return name
}

// BookinfoImage is the image `make images` built for one of Istio's Bookinfo
// names, e.g. "details-v1".
func BookinfoImage(app string) string {
	return BookinfoHub + "/examples-bookinfo-" + app + ":" + BookinfoTag
}

// PortForward runs `kubectl port-forward -n ns target :port` (target like
// "pod/details" or "svc/details") until the test ends and returns the local
// address (127.0.0.1:N) it forwards from.
func (c *Cluster) PortForward(t testing.TB, ns, target string, port int) string {
	t.Helper()
	addr, stop := c.portForward(t, ns, target, port)
	t.Cleanup(stop)
	return addr
}

// portForward starts a port-forward and returns its local address and the
// function that stops it and waits for kubectl to exit.
func (c *Cluster) portForward(t testing.TB, ns, target string, port int) (string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, c.Kubectl, "--kubeconfig", c.Kubeconfig, "-n", ns,
		"port-forward", "--address", "127.0.0.1", target, fmt.Sprintf(":%d", port))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatalf("port-forward %s: %v", target, err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("port-forward %s: %v", target, err)
	}
	stop := func() {
		cancel()
		_ = cmd.Wait()
	}
	// "Forwarding from 127.0.0.1:40513 -> 9080"
	addr := make(chan string, 1)
	go func() {
		buf := make([]byte, 4096)
		var seen []byte
		for {
			n, err := stdout.Read(buf)
			seen = append(seen, buf[:n]...)
			if _, rest, ok := bytes.Cut(seen, []byte("Forwarding from ")); ok {
				if a, _, ok := bytes.Cut(rest, []byte(" -> ")); ok {
					addr <- string(a)
					_, _ = io.Copy(io.Discard, stdout)
					return
				}
			}
			if err != nil {
				close(addr)
				return
			}
		}
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			stop()
			t.Fatalf("port-forward %s: exited before forwarding: %s", target, stderr.String())
		}
		return a, stop
	case <-time.After(30 * time.Second):
		stop()
		t.Fatalf("port-forward %s: not forwarding after 30s: %s", target, stderr.String())
		return "", stop
	}
}

// Forward is a PortForward that can be started again: kubectl port-forward
// exits when a forwarded connection is refused in the pod (a gateway's
// listener is not up until its Gateway is programmed), and one can stall.
type Forward struct {
	// Addr is the local address (127.0.0.1:N) of the current port-forward.
	Addr string

	t          testing.TB
	c          *Cluster
	ns, target string
	port       int
	stop       func() // ends the current kubectl port-forward
}

// Forward starts PortForward(t, ns, target, port) and returns it renewable.
func (c *Cluster) Forward(t testing.TB, ns, target string, port int) *Forward {
	t.Helper()
	f := &Forward{t: t, c: c, ns: ns, target: target, port: port}
	f.Addr, f.stop = c.portForward(t, ns, target, port)
	t.Cleanup(func() { f.stop() })
	return f
}

// Renew stops the current port-forward, starts a new one and points Addr at
// it.
func (f *Forward) Renew() {
	f.t.Helper()
	f.stop()
	f.Addr, f.stop = f.c.portForward(f.t, f.ns, f.target, f.port)
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Assets returns the directory holding the kit's kube-apiserver, etcd and
// kubectl (KUBEBUILDER_ASSETS, which make test exports, else the kit's cache
// ~/.cache/bowline/kube/v1.37.2/bin), for tests that start their own API
// server. Missing binaries skip the test on a developer machine without root
// and CI, and fail it elsewhere: make kube-bins (or make test) builds them.
func Assets(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatalf("Kubernetes binaries: %v", err)
		}
		dir = filepath.Join(home, ".cache", "bowline", "kube", "v1.37.2", "bin")
	}
	for _, name := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			if os.Getenv("CI") == "" && os.Geteuid() != 0 {
				t.Skipf("Kubernetes test skipped: no %s in %s (make kube-bins builds it; CI and root always run these tests)", name, dir)
			}
			t.Fatalf("Kubernetes test: no %s in %s: make kube-bins (or make test) builds it", name, dir)
		}
	}
	return dir
}

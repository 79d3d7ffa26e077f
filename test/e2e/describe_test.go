package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDescribeBookinfoUp runs `bowline x describe` against a `bowline up`
// Bookinfo with Istio's routing and security samples applied, as a user
// would after the tasks: the text names the services, the routes that reach
// (or miss) the pod, the mTLS mode and the PeerAuthentication behind it, the
// authorization policy and what it allows, and the gateway exposing
// productpage; a change to the files shows in the next description.
func TestDescribeBookinfoUp(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds binaries and runs processes")
	}
	bins := binaries(t)
	dir := bookinfoDir(t, bins)
	root := repoRoot(t)
	for _, f := range []string{"peer-authentication-strict.yaml", "authz-reviews-viewer.yaml"} {
		copyFile(t, filepath.Join(root, "samples", "bookinfo", "policy", f), filepath.Join(dir, f))
	}
	m := startUp(t, filepath.Join(bins, "bowline"), dir)
	m.apply(t, "virtual-service-reviews-test-v2.yaml")

	// describe polls until the description holds every want: the control
	// plane reads applied files within moments, not at once.
	describe := func(t *testing.T, args string, want ...string) string {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			out := m.bowline(t, dir, append([]string{"x", "describe"}, strings.Fields(args)...)...)
			missing := ""
			for _, w := range want {
				if !strings.Contains(out, w) {
					missing = w
					break
				}
			}
			if missing == "" {
				return out
			}
			if time.Now().After(deadline) {
				t.Fatalf("bowline x describe %s lacks %q after 60s:\n%s", args, missing, out)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}

	t.Run("pod reviews-v2", func(t *testing.T) {
		describe(t, "pod reviews-v2-0",
			"Pod: reviews-v2-0.default\n",
			"   Workload: reviews-v2, service account bookinfo-reviews (spiffe://cluster.local/ns/default/sa/bookinfo-reviews)\n",
			"Service: reviews.default.svc.cluster.local (default/reviews)\n",
			"   Port: http 9080/HTTP targets pod port 9080\n",
			"   Matching subsets: v2\n      (non-matching subsets v1, v3)\n",
			"VirtualService: default/reviews\n",
			`   HTTP route 1: header end-user exact "jason" -> reviews.default.svc.cluster.local subset v2 (this pod)`+"\n",
			"   HTTP route 2: any request -> reviews.default.svc.cluster.local subset v1\n",
			"mTLS: STRICT, set by PeerAuthentication default/default (namespace)\n",
			"   ALLOW default/reviews-viewer (selector app=reviews)\n",
			"      rule 1: from principals cluster.local/ns/default/sa/bookinfo-productpage; to methods GET\n",
			"   A request that matches no ALLOW rule is denied (403)\n",
			"Not exposed on any gateway\n")
	})

	t.Run("pod reviews-v3 gets no traffic", func(t *testing.T) {
		describe(t, "pod reviews-v3-0.default",
			"   WARNING: no route of default/reviews sends requests to this pod\n")
	})

	t.Run("service productpage exposed on the gateway", func(t *testing.T) {
		describe(t, "service productpage",
			"Service: productpage.default.svc.cluster.local (default/productpage)\n",
			"Workload: productpage-v1.default (app=productpage, version=v1)\n",
			"AuthorizationPolicies: none (every request is allowed)\n",
			"Exposed on Gateway default/bookinfo-gateway (selector istio=ingressgateway): http 8080/HTTP hosts *\n",
			"   VirtualService: default/bookinfo (hosts *)\n",
			`      HTTP route 1: uri exact "/productpage" or uri prefix "/static" or uri exact "/login" or uri exact "/logout" or uri prefix "/api/v1/products" -> productpage.default.svc.cluster.local:9080`+"\n")
	})

	t.Run("the ingress gateway", func(t *testing.T) {
		describe(t, "pod istio-ingressgateway",
			"Gateway pod: istio-ingressgateway.istio-system (workload istio-ingressgateway)\n",
			"Gateway: default/bookinfo-gateway (selector istio=ingressgateway)\n",
			"   Server: http 8080/HTTP hosts *\n",
			`      HTTP route 1: uri exact "/productpage" or uri prefix "/static" or uri exact "/login" or uri exact "/logout" or uri prefix "/api/v1/products" -> productpage.default.svc.cluster.local:9080`+"\n")
	})

	t.Run("live: the VirtualService removed, PERMISSIVE applied", func(t *testing.T) {
		m.remove(t, "virtual-service-reviews-test-v2.yaml")
		copyFile(t, filepath.Join(root, "samples", "bookinfo", "policy", "peer-authentication-permissive.yaml"), filepath.Join(dir, "peer-authentication-strict.yaml"))
		describe(t, "workload reviews-v3",
			"Pod: reviews-v3-0.default\n",
			"VirtualService: none (requests go to every endpoint of the service)\n",
			"mTLS: PERMISSIVE, set by PeerAuthentication default/default (namespace)\n")
	})

	t.Run("unknown pod", func(t *testing.T) {
		cmd := exec.Command(m.cmd.Path, "x", "describe", "pod", "nope")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); err == nil || code != 1 ||
			!strings.Contains(string(out), `error: pod "nope": not found; pods: details-v1-0.default, productpage-v1-0.default,`) {
			t.Errorf("bowline x describe pod nope: exit %d, %v\n%s", code, err, out)
		}
	})
}

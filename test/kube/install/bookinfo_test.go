package install

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/test/kubecluster"
)

// samples is the repository's samples/bookinfo directory.
func samples(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "samples", "bookinfo")
}

// page is one answer of GET /productpage.
type page struct {
	code int
	body string
	err  error
}

// reviewsVersion is the reviews version that served the page ("v1".."v3"), from
// "Reviews served by: reviews-vN-...", or "".
func (p page) reviewsVersion() string {
	_, rest, ok := strings.Cut(p.body, "Reviews served by: reviews-")
	if !ok || len(rest) < 2 {
		return ""
	}
	return rest[:2]
}

func (p page) String() string {
	if p.err != nil {
		return p.err.Error()
	}
	body := p.body
	if i := strings.Index(body, "<body"); i > 0 {
		body = body[i:]
	}
	if len(body) > 1500 {
		body = body[:1500] + "..."
	}
	return fmt.Sprintf("%d %s", p.code, body)
}

// fetch gets path through f as user (see getPage), starting f again when
// kubectl has exited on a refused connection.
func fetch(f *kubecluster.Forward, path, user string) page {
	p := getPage("http://"+f.Addr+path, user)
	if p.err != nil && strings.Contains(p.err.Error(), "connection refused") {
		f.Renew()
	}
	return p
}

// getPage fetches url once; user, when set, is the signed-in user
// (productpage's session cookie, which it forwards as end-user).
func getPage(url, user string) page {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return page{err: err}
	}
	if user != "" {
		req.AddCookie(&http.Cookie{Name: "session", Value: user})
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return page{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return page{code: resp.StatusCode, body: string(b), err: err}
}

// kubectl runs kubectl and fails the test on an error.
func kubectl(ctx context.Context, t *testing.T, c *kubecluster.Cluster, stdin string, args ...string) string {
	t.Helper()
	out, err := c.RunStdin(ctx, stdin, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return out
}

// TestBookinfo is Istio's Bookinfo walkthrough on the cluster, with Istio's
// files unchanged: bowline install, a namespace labelled
// istio-injection=enabled, samples/bookinfo/platform/kube/bookinfo.yaml
// (every pod Ready with the injected native sidecar), bookinfo-gateway.yaml
// (/productpage through the ingress gateway with reviews of all three
// versions), proxy-status SYNCED for every sidecar, the request-routing
// task's files, PeerAuthentication STRICT (a pod without a sidecar can no
// longer reach details, the injected ones can, and the pods stay Ready)
// and an AuthorizationPolicy denying productpage's GET /details/*
// (productpage's principal comes from its mTLS certificate). docs/kubernetes.md walks through
// the same commands.
func TestBookinfo(t *testing.T) {
	c := kubecluster.Require(t)
	b := binary(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ns := deployBookinfo(ctx, t, c, b)

	t.Run("EveryPodHasTheSidecar", func(t *testing.T) {
		out := kubectl(ctx, t, c, "", "get", "pods", "-n", ns, "-o",
			`jsonpath={range .items[*]}{.metadata.name} {.spec.initContainers[*].name} {.spec.initContainers[?(@.name=="istio-proxy")].restartPolicy} {.status.initContainerStatuses[?(@.name=="istio-proxy")].ready} {.status.containerStatuses[*].ready}{"\n"}{end}`)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 6 {
			t.Fatalf("%d pods, want Bookinfo's 6:\n%s", len(lines), out)
		}
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) != 6 || f[1] != "istio-init" || f[2] != "istio-proxy" || f[3] != "Always" || f[4] != "true" || f[5] != "true" {
				t.Errorf("pod %q: want init containers istio-init and istio-proxy (restartPolicy Always, ready) and the app ready", l)
			}
		}
	})

	gwf := bookinfoGateway(ctx, t, c, ns)

	t.Run("ProductpageThroughTheGatewayShowsAllReviewsVersions", func(t *testing.T) {
		seen := map[string]bool{}
		var last page
		poll(t, 90*time.Second, "/productpage through the ingress gateway served by reviews v1, v2 and v3", func() string {
			last = fetch(gwf, "/productpage", "")
			if last.code == http.StatusOK && strings.Contains(last.body, `<dd id="details-isbn10">1234567890</dd>`) && !strings.Contains(last.body, "Error fetching") {
				seen[last.reviewsVersion()] = true
			}
			if seen["v1"] && seen["v2"] && seen["v3"] {
				return ""
			}
			return fmt.Sprintf("seen %v; last answer %s", seen, last)
		})
		if !strings.Contains(last.body, `class="stars-`) && last.reviewsVersion() != "v1" {
			t.Errorf("reviews %s shows no stars", last.reviewsVersion())
		}
	})

	t.Run("ProxyStatusShowsEverySidecarSynced", func(t *testing.T) {
		poll(t, time.Minute, "bowline proxy-status shows Bookinfo's 6 sidecars SYNCED", func() string {
			out, code := b.run(ctx, "proxy-status")
			n := 0
			for _, line := range strings.Split(out, "\n") {
				f := strings.Fields(line)
				if len(f) >= 5 && strings.HasSuffix(f[0], "."+ns) && !slices.ContainsFunc(f[1:5], func(s string) bool { return s != "SYNCED" }) {
					n++
				}
			}
			if n == 6 {
				return ""
			}
			return fmt.Sprintf("%d synced; exit %d:\n%s", n, code, out)
		})
	})

	// Istio's request-routing task.
	versions := func(user string, n int) map[string]int {
		got := map[string]int{}
		for range n {
			got[fetch(gwf, "/productpage", user).reviewsVersion()]++
		}
		return got
	}
	t.Run("VirtualServiceAllV1", func(t *testing.T) {
		kubectl(ctx, t, c, "", "apply", "-n", ns, "-f", filepath.Join(samples(t), "networking", "destination-rule-all.yaml"),
			"-f", filepath.Join(samples(t), "networking", "virtual-service-all-v1.yaml"))
		poll(t, 30*time.Second, "every page served by reviews v1", func() string {
			if got := versions("", 10); got["v1"] != 10 {
				return fmt.Sprintf("served by %v", got)
			}
			return ""
		})
	})
	t.Run("VirtualServiceReviewsTestV2", func(t *testing.T) {
		kubectl(ctx, t, c, "", "apply", "-n", ns, "-f", filepath.Join(samples(t), "networking", "virtual-service-reviews-test-v2.yaml"))
		poll(t, 30*time.Second, "jason's pages served by reviews v2, others' by v1", func() string {
			if got, anon := versions("jason", 5), versions("", 5); got["v2"] != 5 || anon["v1"] != 5 {
				return fmt.Sprintf("jason served by %v, anonymous by %v", got, anon)
			}
			return ""
		})
		if p := fetch(gwf, "/productpage", "jason"); !strings.Contains(p.body, `class="stars-black"`) {
			t.Errorf("jason's page has no black stars (reviews v2): %s", p)
		}
	})

	// Mutual TLS: productpage without a sidecar, in a namespace without
	// injection, calling details and reviews of the Bookinfo namespace.
	plain := c.Namespace(t)
	kubectl(ctx, t, c, "", "run", "productpage", "-n", plain, "--image", kubecluster.BookinfoImage("productpage-v1"),
		"--image-pull-policy", "IfNotPresent", "--port", "9080",
		"--env", "DETAILS_HOSTNAME=details."+ns, "--env", "REVIEWS_HOSTNAME=reviews."+ns)
	if out, err := c.Run(ctx, "wait", "-n", plain, "--for=condition=Ready", "pod/productpage", "--timeout=90s"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	plainf := c.Forward(t, plain, "pod/productpage", 9080)
	const detailsShown, detailsError = `<dd id="details-isbn10">1234567890</dd>`, "Error fetching product details"
	poll(t, 30*time.Second, "productpage without a sidecar shows the details (PERMISSIVE)", func() string {
		if p := fetch(plainf, "/productpage", ""); !strings.Contains(p.body, detailsShown) {
			return p.String()
		}
		return ""
	})

	t.Run("PeerAuthenticationStrict", func(t *testing.T) {
		kubectl(ctx, t, c, `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
spec:
  mtls:
    mode: STRICT
`, "apply", "-n", ns, "-f", "-")
		poll(t, 30*time.Second, "productpage without a sidecar can no longer fetch the details", func() string {
			if p := fetch(plainf, "/productpage", ""); p.code != http.StatusOK || !strings.Contains(p.body, detailsError) {
				return p.String()
			}
			return ""
		})
		if p := fetch(gwf, "/productpage", ""); p.code != http.StatusOK || !strings.Contains(p.body, detailsShown) {
			t.Errorf("injected productpage under STRICT: %s, want the details", p)
		}
		out := kubectl(ctx, t, c, "", "get", "pods", "-n", ns, "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}`)
		if strings.Contains(out, "=False") {
			t.Errorf("pods not Ready under STRICT: %s", out)
		}
	})

	t.Run("AuthorizationPolicyDeniesProductpageDetails", func(t *testing.T) {
		kubectl(ctx, t, c, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-productpage-details
spec:
  selector:
    matchLabels:
      app: details
  action: DENY
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/`+ns+`/sa/bookinfo-productpage"]
    to:
    - operation:
        methods: ["GET"]
        paths: ["/details/*"]
`, "apply", "-n", ns, "-f", "-")
		poll(t, 30*time.Second, "productpage shows its error fetching the details", func() string {
			if p := fetch(gwf, "/productpage", ""); p.code != http.StatusOK || !strings.Contains(p.body, detailsError) {
				return p.String()
			}
			return ""
		})
	})
}

// deployBookinfo installs Bowline (uninstalling it when the test ends) and
// deploys Istio's bookinfo.yaml unchanged in a new namespace labelled
// istio-injection=enabled, waiting until every Deployment is Available; it
// returns the namespace.
func deployBookinfo(ctx context.Context, t *testing.T, c *kubecluster.Cluster, b *bowline) string {
	t.Helper()
	if out, err := c.Run(ctx, "get", "namespace", "istio-system", "--ignore-not-found", "-o", "name"); err == nil && strings.TrimSpace(out) != "" {
		t.Logf("istio-system exists (an earlier run was interrupted): uninstalling first\n%s", uninstall(t, b))
	}
	out, code := b.run(ctx, "install", "-y", "--timeout", "3m")
	t.Cleanup(func() {
		if t.Failed() {
			dumpState(t, c)
		}
		uninstall(t, b)
	})
	if code != 0 {
		t.Fatalf("bowline install -y: exit %d\n%s", code, out)
	}
	ns := c.Namespace(t)
	dumpOnFailure(t, c, ns)
	kubectl(ctx, t, c, "", "label", "namespace", ns, "istio-injection=enabled")
	kubectl(ctx, t, c, "", "apply", "-n", ns, "-f", filepath.Join(samples(t), "platform", "kube", "bookinfo.yaml"))
	if out, err := c.Run(ctx, "wait", "-n", ns, "--for=condition=Available", "deployment", "--all", "--timeout=180s"); err != nil {
		t.Fatalf("Bookinfo's Deployments not available: %v\n%s", err, out)
	}
	return ns
}

// bookinfoGateway applies Istio's bookinfo-gateway.yaml in ns and returns a
// port-forward to the ingress gateway's Service port 80.
func bookinfoGateway(ctx context.Context, t *testing.T, c *kubecluster.Cluster, ns string) *kubecluster.Forward {
	t.Helper()
	kubectl(ctx, t, c, "", "apply", "-n", ns, "-f", filepath.Join(samples(t), "networking", "bookinfo-gateway.yaml"))
	return c.Forward(t, "istio-system", "svc/istio-ingressgateway", 80)
}

// dumpOnFailure logs the namespace's pods and their sidecars' logs when t fails.
func dumpOnFailure(t *testing.T, c *kubecluster.Cluster, ns string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, args := range [][]string{
			{"get", "pods", "-n", ns, "-o", "wide"},
			{"get", "events", "-n", ns},
			{"logs", "-n", ns, "-l", "app=productpage", "-c", "istio-proxy", "--tail", "30"},
			{"logs", "-n", ns, "-l", "app=details", "-c", "istio-proxy", "--tail", "30"},
		} {
			out, _ := c.Run(ctx, args...)
			t.Logf("kubectl %s:\n%s", strings.Join(args, " "), out)
		}
	})
}

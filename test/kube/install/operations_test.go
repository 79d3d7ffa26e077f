package install

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/test/kubecluster"
)

// loadRPS is the steady load the lifecycle tests send through the ingress
// gateway while pods come and go.
const loadRPS = 100

// TestBookinfoOperations is what an operator does to Bookinfo on a mesh, with
// Istio's files unchanged and a user's view of the result: discovery's pod
// deleted while 100 requests per second go through the ingress gateway (not
// one fails, every proxy syncs with the new pod), reviews-v2 scaled to 4 pods
// (all four in the caller's EDS and serving), Istio's fault-injection and
// traffic-shifting tasks observed with real requests. docs/kubernetes.md
// walks through the same commands.
func TestBookinfoOperations(t *testing.T) {
	c := kubecluster.Require(t)
	b := binary(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	ns := deployBookinfo(ctx, t, c, b)
	gwf := bookinfoGateway(ctx, t, c, ns)
	poll(t, 2*time.Minute, "/productpage through the ingress gateway shows details and reviews", func() string {
		p := fetch(gwf, "/productpage", "")
		return pageFailure(p.code, p.body, p.err)
	})
	// The load goes through a port-forward of its own, which nothing else
	// renews under it.
	loadAddr := c.PortForward(t, "istio-system", "svc/istio-ingressgateway", 80)

	t.Run("DiscoveryRestartUnderLoad", func(t *testing.T) {
		old := strings.Fields(kubectl(ctx, t, c, "", "get", "pods", "-n", "istio-system", "-l", "app=istiod", "-o", "jsonpath={.items[*].metadata.name}"))
		if len(old) != 1 {
			t.Fatalf("istiod pods %v, want one", old)
		}
		l := startLoad(t, loadAddr, loadRPS)
		steady(t, l)
		kubectl(ctx, t, c, "", "delete", "pod", "-n", "istio-system", old[0], "--wait=false")
		var fresh string
		poll(t, 3*time.Minute, "a new discovery pod Ready and the old one gone", func() string {
			out, _ := c.Run(ctx, "get", "pods", "-n", "istio-system", "-l", "app=istiod", "-o",
				`jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}`)
			f := strings.Fields(out)
			if len(f) != 1 || strings.HasPrefix(f[0], old[0]+"=") || !strings.HasSuffix(f[0], "=True") {
				return "istiod pods: " + out
			}
			fresh, _, _ = strings.Cut(f[0], "=")
			return ""
		})
		// Every sidecar and the gateway connect to the new discovery and are
		// in sync with it.
		poll(t, 2*time.Minute, "the gateway and the 6 sidecars SYNCED with "+fresh, func() string {
			out, code := b.run(ctx, "proxy-status")
			if n := syncedWith(out, fresh); n != 7 {
				return fmt.Sprintf("%d in sync with %s; exit %d:\n%s", n, fresh, code, out)
			}
			return ""
		})
		steady(t, l)
		l.check(t, "the discovery pod's deletion and its successor's start")
		dumpFailedRequests(t, c, ns)
	})

	t.Run("ScaleReviewsV2", func(t *testing.T) {
		kubectl(ctx, t, c, "", "apply", "-n", ns, "-f", networking(t, "destination-rule-all.yaml"),
			"-f", networking(t, "virtual-service-all-v1.yaml"), "-f", networking(t, "virtual-service-reviews-test-v2.yaml"))
		kubectl(ctx, t, c, "", "scale", "-n", ns, "deployment/reviews-v2", "--replicas=4")
		if out, err := c.Run(ctx, "rollout", "status", "-n", ns, "deployment/reviews-v2", "--timeout=3m"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		pods := podNames(ctx, t, c, ns, "app=reviews,version=v2")
		if len(pods) != 4 {
			t.Fatalf("reviews-v2 pods %v, want 4", pods)
		}
		// The caller's view: productpage's sidecar has all four in the v2
		// subset's endpoints.
		admin := c.PortForward(t, ns, "deploy/productpage-v1", 15000)
		cluster := "outbound|9080|v2|reviews." + ns + ".svc.cluster.local"
		poll(t, time.Minute, "4 healthy endpoints of "+cluster+" in productpage's sidecar", func() string {
			if n, body := healthyHosts(admin, cluster); n != 4 {
				return fmt.Sprintf("%d healthy:\n%.1500s", n, grepLines(body, cluster))
			}
			return ""
		})
		// And traffic: jason's pages (reviews-test-v2 sends him to v2) are
		// served by each of the four pods.
		served := map[string]int{}
		poll(t, time.Minute, "jason's pages served by each of "+strings.Join(pods, ", "), func() string {
			p := fetch(gwf, "/productpage", "jason")
			if _, rest, ok := strings.Cut(p.body, "Reviews served by: "); ok {
				name, _, _ := strings.Cut(rest, "<")
				served[strings.TrimSpace(name)]++
			}
			for _, pod := range pods {
				if served[pod] == 0 {
					return fmt.Sprintf("served by %v", served)
				}
			}
			return ""
		})
		t.Logf("jason's pages by reviews-v2 pod: %v", served)
	})

	// Istio's fault-injection task: reviews-test-v2 sends jason to reviews
	// v2, which calls ratings.
	t.Run("FaultInjectionRatingsDelay", func(t *testing.T) {
		kubectl(ctx, t, c, "", "apply", "-n", ns, "-f", networking(t, "virtual-service-ratings-test-delay.yaml"))
		const unavailable = "Sorry, product reviews are currently unavailable for this book."
		var took time.Duration
		poll(t, 2*time.Minute, "jason's page shows the reviews unavailable (ratings held 7s, productpage gives reviews 2 x 3s)", func() string {
			start := time.Now()
			p := fetch(gwf, "/productpage", "jason")
			took = time.Since(start)
			if p.code != http.StatusOK || !strings.Contains(p.body, unavailable) {
				return p.String()
			}
			return ""
		})
		if took < 5*time.Second {
			t.Errorf("jason's page took %s, want at least the 6s productpage waits for reviews", took)
		}
		if p := fetch(gwf, "/productpage", ""); pageFailure(p.code, p.body, p.err) != "" || p.reviewsVersion() != "v1" {
			t.Errorf("anonymous page under the delay fault: %s, want reviews v1 unaffected", p)
		}
		t.Logf("jason's page with the 7s ratings delay: %s", took.Round(time.Millisecond))
	})
	t.Run("FaultInjectionRatingsAbort", func(t *testing.T) {
		kubectl(ctx, t, c, "", "apply", "-n", ns, "-f", networking(t, "virtual-service-ratings-test-abort.yaml"))
		poll(t, time.Minute, "jason's page shows the ratings unavailable (ratings aborted with 500)", func() string {
			p := fetch(gwf, "/productpage", "jason")
			if p.code != http.StatusOK || p.reviewsVersion() != "v2" || !strings.Contains(p.body, "Ratings service is currently unavailable") {
				return p.String()
			}
			return ""
		})
		if p := fetch(gwf, "/productpage", ""); pageFailure(p.code, p.body, p.err) != "" || p.reviewsVersion() != "v1" {
			t.Errorf("anonymous page under the abort fault: %s, want reviews v1 unaffected", p)
		}
		// The fault ends with Istio's plain ratings routes.
		kubectl(ctx, t, c, "", "delete", "-n", ns, "virtualservice/ratings")
	})

	// Istio's traffic-shifting task: 80% of reviews to v1, 20% to v2.
	t.Run("TrafficShifting80-20", func(t *testing.T) {
		kubectl(ctx, t, c, "", "apply", "-n", ns, "-f", networking(t, "virtual-service-reviews-80-20.yaml"))
		poll(t, time.Minute, "a page of reviews v2 for an anonymous user", func() string {
			if p := fetch(gwf, "/productpage", ""); p.reviewsVersion() != "v2" {
				return "served by " + p.reviewsVersion()
			}
			return ""
		})
		const n = 400
		got := map[string]int{}
		for range n {
			p := fetch(gwf, "/productpage", "")
			if f := pageFailure(p.code, p.body, p.err); f != "" {
				got["failed"]++
				continue
			}
			got[p.reviewsVersion()]++
		}
		// 400 draws at 20%: a standard deviation of 2 points; the band is
		// five of them each side.
		v2 := float64(got["v2"]) / n
		if got["v1"]+got["v2"] != n || v2 < 0.10 || v2 > 0.30 {
			t.Errorf("%d pages served by %v: want only v1 and v2 with v2 at 20%% (10-30%%)", n, got)
		}
		t.Logf("virtual-service-reviews-80-20.yaml: %d pages: %v (v2 %.1f%%)", n, got, 100*v2)
	})
}

// dumpFailedRequests logs, when t failed, the access log lines of the
// gateway and of ns's sidecars that are not 200s: their response flags and
// upstream hosts say where a failed request failed.
func dumpFailedRequests(t *testing.T, c *kubecluster.Cluster, ns string) {
	t.Helper()
	if !t.Failed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, args := range [][]string{
		{"logs", "-n", "istio-system", "deploy/istio-ingressgateway", "--since=10m"},
		{"logs", "-n", ns, "-l", "app", "-c", "istio-proxy", "--prefix", "--since=10m", "--tail=-1", "--max-log-requests=20"},
		{"logs", "-n", ns, "-l", "app", "--prefix", "--since=10m", "--tail=-1", "--max-log-requests=20", "-c", "productpage"},
	} {
		out, _ := c.Run(ctx, args...)
		var keep []string
		for _, line := range strings.Split(out, "\n") {
			if line != "" && !strings.Contains(line, `"response_code":200`) && !strings.Contains(line, "status=200") {
				keep = append(keep, line)
			}
		}
		if len(keep) > 200 {
			keep = keep[len(keep)-200:]
		}
		t.Logf("kubectl %s (lines without a 200):\n%s", strings.Join(args, " "), strings.Join(keep, "\n"))
	}
}

// networking is Istio's samples/bookinfo/networking/FILE.
func networking(t *testing.T, file string) string {
	return filepath.Join(samples(t), "networking", file)
}

// steady waits until the load has had a stretch of good answers (the
// generator is up to speed, or the pods have settled after a change).
func steady(t *testing.T, l *load) {
	t.Helper()
	l.mu.Lock()
	from := l.ok + l.failed
	l.mu.Unlock()
	poll(t, 2*time.Minute, "another 300 answers of the load", func() string {
		l.mu.Lock()
		defer l.mu.Unlock()
		if n := l.ok + l.failed - from; n < 300 {
			return fmt.Sprintf("%d so far", n)
		}
		return ""
	})
}

// syncedWith counts the proxies proxy-status shows SYNCED on CDS, LDS and
// EDS (RDS too where sent) with the discovery pod named istiod.
func syncedWith(out, istiod string) int {
	n := 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !slices.Contains(f, istiod) || f[0] == "NAME" {
			continue
		}
		if !slices.ContainsFunc(f[1:4], func(s string) bool { return s != "SYNCED" }) && (f[4] == "SYNCED" || f[4] == "NOT" && f[5] == "SENT") {
			n++
		}
	}
	return n
}

// podNames lists the names of ns's pods matching selector that are not
// being deleted.
func podNames(ctx context.Context, t *testing.T, c *kubecluster.Cluster, ns, selector string) []string {
	t.Helper()
	out := kubectl(ctx, t, c, "", "get", "pods", "-n", ns, "-l", selector, "-o",
		`jsonpath={range .items[*]}{.metadata.name}={.metadata.deletionTimestamp} {end}`)
	var names []string
	for _, f := range strings.Fields(out) {
		if name, del, _ := strings.Cut(f, "="); del == "" {
			names = append(names, name)
		}
	}
	return names
}

// grepLines keeps the lines of s that contain sub.
func grepLines(s, sub string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

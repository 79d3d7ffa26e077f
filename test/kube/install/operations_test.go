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
// Istio's files unchanged and a user's view of the result: every Deployment
// restarted with kubectl rollout restart, then discovery's pod deleted, while
// 100 requests per second go through the ingress gateway (not one fails;
// every proxy syncs with the new discovery pod), reviews-v2 scaled to 4 pods
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

	t.Run("RolloutRestartUnderLoad", func(t *testing.T) {
		l := startLoad(t, loadAddr, loadRPS)
		// One after the other, as an operator rolls a fleet: each waits
		// until its old pod is gone.
		for _, d := range []string{"reviews-v1", "productpage-v1", "details-v1", "ratings-v1", "reviews-v2", "reviews-v3"} {
			rollout(ctx, t, c, ns, d)
		}
		steady(t, l)
		l.check(t, "kubectl rollout restart of every Bookinfo Deployment")
		// Each old pod's sidecar was told to drain by its preStop hook.
		if ev := kubectl(ctx, t, c, "", "get", "events", "-n", ns, "--field-selector", "reason=FailedPreStopHook", "-o", "name"); strings.TrimSpace(ev) != "" {
			out, _ := c.Run(ctx, "get", "events", "-n", ns, "--field-selector", "reason=FailedPreStopHook")
			t.Errorf("the sidecars' preStop hooks failed:\n%s", out)
		}
		dumpFailedRequests(t, c, ns)
	})

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

	// Offline injection: bowline kube-inject's output applied in a namespace
	// without the injection label works as the webhook's.
	t.Run("KubeInjectWithoutTheLabel", func(t *testing.T) {
		plain := c.Namespace(t)
		dumpOnFailure(t, c, plain)
		injected, code := b.run(ctx, "kube-inject", "-f", filepath.Join(samples(t), "platform", "kube", "bookinfo.yaml"))
		if code != 0 {
			t.Fatalf("bowline kube-inject: exit %d\n%s", code, injected)
		}
		kubectl(ctx, t, c, injected, "apply", "-n", plain, "-f", "-")
		if out, err := c.Run(ctx, "wait", "-n", plain, "--for=condition=Available", "deployment", "--all", "--timeout=180s"); err != nil {
			t.Fatalf("kube-injected Bookinfo not available: %v\n%s", err, out)
		}
		out := kubectl(ctx, t, c, "", "get", "pods", "-n", plain, "-o",
			`jsonpath={range .items[*]}{.metadata.name} {.spec.initContainers[*].name} {.spec.initContainers[?(@.name=="istio-proxy")].restartPolicy} {.status.initContainerStatuses[?(@.name=="istio-proxy")].ready}{"\n"}{end}`)
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(l); len(f) != 5 || f[1] != "istio-init" || f[2] != "istio-proxy" || f[3] != "Always" || f[4] != "true" {
				t.Errorf("pod %q: want init containers istio-init and istio-proxy (restartPolicy Always, ready)", l)
			}
		}
		pf := c.Forward(t, plain, "deploy/productpage-v1", 9080)
		poll(t, time.Minute, "the kube-injected productpage shows details and reviews (through its sidecar, mTLS to details and reviews)", func() string {
			p := fetch(pf, "/productpage", "")
			return pageFailure(p.code, p.body, p.err)
		})
		poll(t, time.Minute, "bowline proxy-status shows the 6 kube-injected sidecars SYNCED", func() string {
			out, code := b.run(ctx, "proxy-status")
			n := 0
			for _, line := range strings.Split(out, "\n") {
				f := strings.Fields(line)
				if len(f) >= 5 && strings.HasSuffix(f[0], "."+plain) && !slices.ContainsFunc(f[1:5], func(s string) bool { return s != "SYNCED" }) {
					n++
				}
			}
			if n != 6 {
				return fmt.Sprintf("%d synced; exit %d:\n%s", n, code, out)
			}
			return ""
		})
	})

	// From here on the Bookinfo namespace is STRICT.
	kubectl(ctx, t, c, strictMTLS, "apply", "-n", ns, "-f", "-")

	// The kubelet's HTTP probes reach the app through the sidecar's status
	// port (/app-health/CONTAINER/readyz|livez), as Istio rewrites them:
	// plaintext probes still pass under STRICT, and a failing one still fails.
	t.Run("AppProbesUnderStrict", func(t *testing.T) {
		kubectl(ctx, t, c, probedApps(), "apply", "-n", ns, "-f", "-")
		out := kubectl(ctx, t, c, "", "get", "deployment", "-n", ns, "probed", "-o",
			`jsonpath={.spec.template.spec.containers[0].readinessProbe.httpGet.path}`)
		if out != "/health" {
			t.Errorf("the Deployment's probe is %q: injection must change pods only", out)
		}
		if out, err := c.Run(ctx, "wait", "-n", ns, "--for=condition=Available", "deployment/probed", "--timeout=180s"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		pod := podNames(ctx, t, c, ns, "app=probed")
		if len(pod) != 1 {
			t.Fatalf("probed pods %v, want 1", pod)
		}
		probes := kubectl(ctx, t, c, "", "get", "pod", "-n", ns, pod[0], "-o",
			`jsonpath={.spec.containers[0].readinessProbe.httpGet.path}:{.spec.containers[0].readinessProbe.httpGet.port} `+
				`{.spec.containers[0].livenessProbe.httpGet.path}:{.spec.containers[0].livenessProbe.httpGet.port} `+
				`{.spec.containers[0].startupProbe.httpGet.path}:{.spec.containers[0].startupProbe.httpGet.port}`)
		if want := "/app-health/details/readyz:15020 /app-health/details/livez:15020 /app-health/details/startupz:15020"; probes != want {
			t.Errorf("probed pod's probes %q, want %q", probes, want)
		}
		// Liveness every second with failureThreshold 1 once the startup
		// probe passed: one failed probe would restart the app. The app's
		// access log shows the probes the sidecar sent it.
		poll(t, 2*time.Minute, "10 probes answered by the app, no restart, the pod Ready", func() string {
			logs, _ := c.Run(ctx, "logs", "-n", ns, pod[0], "-c", "details")
			n := strings.Count(logs, `path=/health status=200`)
			st := kubectl(ctx, t, c, "", "get", "pod", "-n", ns, pod[0], "-o",
				`jsonpath={.status.containerStatuses[0].restartCount} {.status.conditions[?(@.type=="Ready")].status}`)
			if st != "0 True" {
				t.Fatalf("probed pod: restarts and Ready %q, want \"0 True\" (a probe failed under STRICT)", st)
			}
			if n < 10 {
				return fmt.Sprintf("%d probes in the app's log", n)
			}
			return ""
		})
		poll(t, 2*time.Minute, "the pod whose readiness path is missing is not Ready, the kubelet says why", func() string {
			ev, _ := c.Run(ctx, "get", "events", "-n", ns, "--field-selector", "reason=Unhealthy", "-o", "jsonpath={range .items[*]}{.involvedObject.name}: {.message}{\"\\n\"}{end}")
			for _, l := range strings.Split(ev, "\n") {
				if strings.HasPrefix(l, "unready-") && strings.Contains(l, "Readiness probe failed: HTTP probe failed with statuscode: 404") {
					return ""
				}
			}
			return "events:\n" + ev
		})
		if st := kubectl(ctx, t, c, "", "get", "pods", "-n", ns, "-l", "app=unready", "-o", `jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}`); st != "False" {
			t.Errorf("unready pod Ready=%q, want False", st)
		}
	})

	// Jobs end: the native sidecar stops once the app container has
	// exited; in the classic layout the app ends it with POST
	// /quitquitquit, as Istio documents.
	t.Run("JobsComplete", func(t *testing.T) {
		// The Jobs run bowline itself (wait, request): the image the
		// sidecars run.
		image := kubectl(ctx, t, c, "", "get", "pods", "-n", ns, "-l", "app=details", "-o",
			`jsonpath={.items[0].spec.initContainers[?(@.name=="istio-proxy")].image}`)
		kubectl(ctx, t, c, jobs(image), "apply", "-n", ns, "-f", "-")
		for _, job := range []string{"mesh-call", "classic-quit"} {
			if out, err := c.Run(ctx, "wait", "-n", ns, "--for=condition=Complete", "job/"+job, "--timeout=180s"); err != nil {
				st, _ := c.Run(ctx, "get", "pods", "-n", ns, "-l", "job-name="+job, "-o", "yaml")
				t.Errorf("job %s: %v\n%s\n%.3000s", job, err, out, st)
				continue
			}
			st := kubectl(ctx, t, c, "", "get", "pods", "-n", ns, "-l", "job-name="+job, "-o", `jsonpath={.items[*].status.phase}`)
			if st != "Succeeded" {
				t.Errorf("job %s pods: %q, want Succeeded", job, st)
			}
		}
		// mesh-call fetched details through its sidecar, over mTLS (the
		// namespace is STRICT).
		logs, _ := c.Run(ctx, "logs", "-n", ns, "job/mesh-call", "-c", "call")
		if !strings.Contains(logs, "sidecar ready") {
			t.Errorf("mesh-call's log: %q, want the details answered", logs)
		}
	})
}

// strictMTLS is Istio's namespace-wide PeerAuthentication STRICT.
const strictMTLS = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
spec:
  mtls:
    mode: STRICT
`

// probedApps are details with readiness, liveness and startup probes on its
// /health, and details whose readiness probe asks for a page that does not
// exist.
func probedApps() string {
	var b strings.Builder
	for _, app := range []struct{ name, path string }{{"probed", "/health"}, {"unready", "/no-such-page"}} {
		fmt.Fprintf(&b, `---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
  replicas: 1
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      containers:
      - name: details
        image: %[3]s
        imagePullPolicy: Never
        ports:
        - containerPort: 9080
        readinessProbe:
          httpGet: {path: %[2]s, port: 9080}
          periodSeconds: 1
        livenessProbe:
          httpGet: {path: /health, port: 9080}
          periodSeconds: 1
          failureThreshold: 1
        startupProbe:
          httpGet: {path: /health, port: 9080}
          periodSeconds: 1
          failureThreshold: 120
`, app.name, app.path, kubecluster.BookinfoImage("details-v1"))
	}
	return b.String()
}

// jobs are two Jobs with injected sidecars, running the bowline image:
// mesh-call fetches details
// through its native sidecar and exits; classic-quit, in the classic layout
// (the proxy a regular container, the app started once it is ready), ends
// its sidecar with POST /quitquitquit.
func jobs(image string) string {
	return fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata:
  name: mesh-call
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: call
        image: %[1]s
        imagePullPolicy: Never
        args: [wait, --url, "http://details:9080/details/0", --timeout, 2m]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: classic-quit
spec:
  backoffLimit: 0
  template:
    metadata:
      annotations:
        sidecar.istio.io/nativeSidecar: "false"
        proxy.istio.io/config: '{"holdApplicationUntilProxyStarts": true}'
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: %[1]s
        imagePullPolicy: Never
        args: [request, --debug-port=15020, POST, quitquitquit]
`, image)
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
		{"logs", "-n", ns, "-l", "app=productpage", "-c", "productpage", "--prefix", "--since=10m", "--tail=-1"},
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

// rollout restarts the Deployments and waits until each has rolled out and
// none of the namespace's pods is still terminating.
func rollout(ctx context.Context, t *testing.T, c *kubecluster.Cluster, ns string, deployments ...string) {
	t.Helper()
	args := []string{"rollout", "restart", "-n", ns}
	for _, d := range deployments {
		args = append(args, "deployment/"+d)
	}
	start := time.Now()
	kubectl(ctx, t, c, "", args...)
	for _, d := range deployments {
		if out, err := c.Run(ctx, "rollout", "status", "-n", ns, "deployment/"+d, "--timeout=5m"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	poll(t, 3*time.Minute, "no terminating pod left in "+ns, func() string {
		out, _ := c.Run(ctx, "get", "pods", "-n", ns, "-o", `jsonpath={range .items[?(@.metadata.deletionTimestamp)]}{.metadata.name} {end}`)
		if strings.TrimSpace(out) != "" {
			return "terminating: " + out
		}
		return ""
	})
	t.Logf("kubectl rollout restart %s: rolled out, old pods gone after %s", strings.Join(deployments, " "), time.Since(start).Round(time.Millisecond))
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

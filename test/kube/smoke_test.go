// Package kube holds the smoke tests of the test cluster kit (make kube-up):
// the node is Ready, the sample images run as pods and answer through
// kubectl port-forward, pods resolve Service names through the cluster's DNS
// (and nothing else), and the guard that keeps pod and Service traffic on the
// machine is in place. They use the cluster through test/kubecluster: skipped
// without root and CI, failing when CI or root has no cluster.
package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/test/kubecluster"
)

func TestNodeReady(t *testing.T) {
	c := kubecluster.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := c.Run(ctx, "get", "node", kubecluster.NodeName, "-o",
		`jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.nodeInfo.kubeletVersion} {.status.addresses[?(@.type=="InternalIP")].address}`)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if want := "True v1.37.2 " + kubecluster.NodeIP; out != want {
		t.Errorf("node %s: Ready, kubelet version, InternalIP = %q, want %q", kubecluster.NodeName, out, want)
	}
}

// bookinfoManifest is Bookinfo's details, ratings, reviews-v3 and productpage
// as pods with Services, from the images `make images` built under Istio's
// names. imagePullPolicy Never: a missing image fails the pod instead of
// reaching for a registry.
func bookinfoManifest() string {
	var b strings.Builder
	for _, app := range []struct{ name, version string }{
		{"details", "v1"}, {"ratings", "v1"}, {"reviews", "v3"}, {"productpage", "v1"},
	} {
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: Service
metadata:
  name: %[1]s
  labels: {app: %[1]s, service: %[1]s}
spec:
  ports:
  - {port: 9080, name: http}
  selector: {app: %[1]s}
---
apiVersion: v1
kind: Pod
metadata:
  name: %[1]s-%[2]s
  labels: {app: %[1]s, version: %[2]s}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: %[1]s
    image: %[3]s
    imagePullPolicy: Never
    ports:
    - containerPort: 9080
    readinessProbe:
      httpGet: {path: /health, port: 9080}
      periodSeconds: 1
    volumeMounts:
    - {name: tmp, mountPath: /tmp}
  volumes:
  - name: tmp
    emptyDir: {}
`, app.name, app.version, kubecluster.BookinfoImage(app.name+"-"+app.version))
	}
	return b.String()
}

// TestBookinfoPodsAnswerAndResolveServices runs the sample images as pods:
// each answers through kubectl port-forward, and productpage's page shows
// the details and the red stars of reviews v3, which it fetched by the
// Services' short names — so the pods resolved them through the cluster DNS
// and reached them through kube-proxy.
func TestBookinfoPodsAnswerAndResolveServices(t *testing.T) {
	c := kubecluster.Require(t)
	ns := c.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := c.RunStdin(ctx, bookinfoManifest(), "apply", "-n", ns, "-f", "-"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, err := c.Run(ctx, "wait", "-n", ns, "--for=condition=Ready", "pod", "--all", "--timeout=90s"); err != nil {
		desc, _ := c.Run(ctx, "describe", "pods", "-n", ns)
		t.Fatalf("%v\n%s\n%s", err, out, desc)
	}

	details := c.PortForward(t, ns, "pod/details-v1", 9080)
	code, body := get(t, "http://"+details+"/details/0", nil)
	if code != http.StatusOK || !strings.Contains(body, `"ISBN-10":"1234567890"`) {
		t.Errorf("GET /details/0 through port-forward = %d %s, want 200 with the book's ISBN-10", code, body)
	}

	// kube-proxy may program a Service's endpoints a moment after its pods
	// turn Ready, so reviews may answer without ratings at first: poll until
	// it shows ratings' stars.
	reviews := c.PortForward(t, ns, "svc/reviews", 9080)
	code, body = get(t, "http://"+reviews+"/reviews/0", func(code int, body string) bool {
		return code == http.StatusOK && strings.Contains(body, `"color":"red"`)
	})
	var answer struct {
		PodName string `json:"podname"`
		Reviews []struct {
			Rating struct {
				Color string `json:"color"`
			} `json:"rating"`
		} `json:"reviews"`
	}
	if err := json.Unmarshal([]byte(body), &answer); code != http.StatusOK || err != nil {
		t.Fatalf("GET /reviews/0 through port-forward = %d %s (%v), want 200 with JSON", code, body, err)
	}
	if answer.PodName != "reviews-v3" {
		t.Errorf("reviews answered podname %q, want the pod's name reviews-v3 (from HOSTNAME)", answer.PodName)
	}
	if len(answer.Reviews) == 0 || answer.Reviews[0].Rating.Color != "red" {
		t.Errorf("reviews v3 answered %s, want red ratings (fetched from ratings by its Service name)", body)
	}

	page := c.PortForward(t, ns, "pod/productpage-v1", 9080)
	wants := []string{`<dd id="details-isbn10">1234567890</dd>`, `class="stars-red"`}
	// The same wait for details and reviews seen from productpage.
	code, body = get(t, "http://"+page+"/productpage", func(code int, body string) bool {
		return code == http.StatusOK && strings.Contains(body, wants[0]) && strings.Contains(body, wants[1])
	})
	for _, want := range wants {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET /productpage = %d, want 200 with %s (details and reviews reached by Service name); body:\n%s", code, want, body)
		}
	}
	if strings.Contains(body, "Error fetching") {
		t.Errorf("GET /productpage shows an error fetching from a Service:\n%s", body)
	}
}

// TestClusterDNSAnswersOnlyTheClusterDomain asks the cluster's DNS (on the
// node's address, on lo) for a Service and for a name outside the cluster:
// the first resolves to its cluster IP, the second is refused at once — there
// is no forwarding to the host's resolver.
func TestClusterDNSAnswersOnlyTheClusterDomain(t *testing.T) {
	kubecluster.Require(t)
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, net.JoinHostPort(kubecluster.NodeIP, "53"))
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := r.LookupHost(ctx, "kube-dns.kube-system.svc.cluster.local")
	if err != nil || len(addrs) != 1 || addrs[0] != kubecluster.DNSServiceIP {
		t.Errorf("lookup kube-dns.kube-system.svc.cluster.local = %v, %v; want [%s]", addrs, err, kubecluster.DNSServiceIP)
	}
	addrs, err = r.LookupHost(ctx, "example.com")
	var dnsErr *net.DNSError
	if err == nil || !errors.As(err, &dnsErr) || dnsErr.IsTimeout {
		t.Errorf("lookup example.com = %v, %v; want an immediate error (the cluster DNS answers only %s)", addrs, err, "cluster.local")
	}
}

// TestGuardInPlace checks what keeps the cluster's traffic on the machine:
// the mangle guard is the first rule of OUTPUT, FORWARD and POSTROUTING (also
// after kube-proxy's syncs), the pod and Service ranges route to the kit's
// bridge, and the kubelet and the containers run in the guarded cgroup.
func TestGuardInPlace(t *testing.T) {
	kubecluster.Require(t)
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI runs as root; the guard check needs root")
		}
		t.Skip("the guard check reads iptables and needs root")
	}
	const comment = " -m comment --comment bowline-kube-kit"
	guard, guardCG := kubecluster.GuardChain, kubecluster.GuardChain+"-CG"
	for _, ipt := range []string{"iptables", "ip6tables"} {
		for hook, want := range map[string][]string{
			"OUTPUT":      {guard, guardCG},
			"POSTROUTING": {guard, guardCG},
			"FORWARD":     {guard},
		} {
			out := run(t, ipt, "-w", "-t", "mangle", "-S", hook)
			lines := strings.Split(strings.TrimSpace(out), "\n")[1:] // line 0 is the policy
			for i, chain := range want {
				if i >= len(lines) || lines[i] != "-A "+hook+" -j "+chain {
					t.Errorf("%s -t mangle -S %s: rule %d is not the jump to %s:\n%s", ipt, hook, i+1, chain, out)
				}
			}
		}
		wants := map[string][]string{
			guard:   {"-o lo" + comment + " -j RETURN", "-o " + kubecluster.Bridge + comment + " -j RETURN", "-i " + kubecluster.Bridge + comment + " -j DROP"},
			guardCG: {"-o lo" + comment + " -j RETURN", "-o " + kubecluster.Bridge + comment + " -j RETURN", "-m cgroup --path " + kubecluster.Cgroup + comment + " -j DROP"},
		}
		if ipt == "iptables" {
			for _, cidr := range []string{kubecluster.PodCIDR, kubecluster.ServiceCIDR, kubecluster.NodeIP + "/32"} {
				wants[guard] = append(wants[guard], "-d "+cidr+comment+" -j DROP", "-s "+cidr+comment+" -j DROP")
			}
			wants[guard] = append(wants[guard], "-m conntrack --ctorigdst "+kubecluster.ServiceCIDR+comment+" -j DROP",
				"-m conntrack --ctorigsrc "+kubecluster.PodCIDR+comment+" -j DROP")
		}
		for chain, rules := range wants {
			out := run(t, ipt, "-w", "-t", "mangle", "-S", chain)
			for _, r := range rules {
				if !strings.Contains(out, "-A "+chain+" "+r+"\n") {
					t.Errorf("%s mangle %s lacks %q:\n%s", ipt, chain, r, out)
				}
			}
		}
	}
	// kube-proxy has synced (its chains exist) and the guard is still first.
	if out := run(t, "iptables", "-w", "-t", "nat", "-S", "KUBE-SERVICES"); !strings.Contains(out, "default/kubernetes:https") {
		t.Errorf("kube-proxy has not synced the kubernetes Service:\n%s", out)
	}
	// The pod range routes to the bridge. (The Service range's route to the
	// bridge, which up.sh adds and re-asserts, only serves host->ClusterIP
	// traffic; without it the guard drops that traffic, checked above.)
	for _, ip := range []string{"10.244.0.77"} {
		if out := run(t, "ip", "-4", "route", "get", ip); !strings.Contains(out, "dev "+kubecluster.Bridge) {
			t.Errorf("ip route get %s = %q, want it on the bridge %s", ip, out, kubecluster.Bridge)
		}
	}
	// The kubelet, and every container process, run in the guarded cgroup.
	for _, exe := range []string{"kubelet", "pause"} {
		pids := pidsOf(t, exe)
		if len(pids) == 0 {
			t.Errorf("no %s process found", exe)
		}
		for _, pid := range pids {
			cg, err := os.ReadFile(filepath.Join("/proc", pid, "cgroup"))
			if err != nil {
				continue // exited meanwhile
			}
			if !strings.Contains(string(cg), "::/"+kubecluster.Cgroup+"/") {
				t.Errorf("%s (pid %s) runs outside the cgroup %s:\n%s", exe, pid, kubecluster.Cgroup, cg)
			}
		}
	}
}

// get polls GET url until it answers and done (nil: any answer) accepts the
// answer, for up to 30 s, and returns the last answer.
// TestMissingImageNeverReachesARegistry creates a pod whose image is not on
// the node: containerd's attempt to resolve the registry is dropped by the
// cgroup guard before it leaves (the kubelet reports "operation not
// permitted"), so nothing is pulled from anywhere. The guard is checked first,
// so that this test never makes the attempt without it.
func TestMissingImageNeverReachesARegistry(t *testing.T) {
	c := kubecluster.Require(t)
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI runs as root; the registry check reads the guard's iptables and needs root")
		}
		t.Skip("reads the guard's iptables counters; needs root")
	}
	if out := run(t, "iptables", "-w", "-t", "mangle", "-S", "OUTPUT"); !strings.Contains(out, "-A OUTPUT -j "+kubecluster.GuardChain+"-CG") {
		t.Fatalf("the cgroup guard is not in place; not creating a pod that would reach for a registry:\n%s", out)
	}
	ns := c.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const image = "registry.invalid/bowline/none:1"
	if out, err := c.Run(ctx, "run", "-n", ns, "missing", "--image", image, "--image-pull-policy", "Always"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var events string
	for ctx.Err() == nil {
		events, _ = c.Run(ctx, "get", "events", "-n", ns, "--field-selector", "involvedObject.name=missing", "-o", "jsonpath={.items[*].message}")
		if strings.Contains(events, "Failed to pull image") {
			break
		}
		time.Sleep(200 * time.Millisecond) // poll the pod's events
	}
	if !strings.Contains(events, "Failed to pull image \""+image+"\"") || !strings.Contains(events, "operation not permitted") {
		t.Errorf("pulling %s: events %q, want a failed pull with \"operation not permitted\" (the guard dropping containerd's lookup)", image, events)
	}
}

func get(t *testing.T, url string, done func(code int, body string) bool) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	var last error
	code, body, answered := 0, "", false
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			err = rerr
			if err == nil {
				code, body, answered = resp.StatusCode, string(b), true
				if done == nil || done(code, body) {
					return code, body
				}
			}
		}
		last = err
		time.Sleep(100 * time.Millisecond) // poll the condition
	}
	if !answered {
		t.Fatalf("GET %s: no answer in 30s: %v", url, last)
	}
	return code, body
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// pidsOf lists the processes whose executable's base name is exe.
func pidsOf(t *testing.T, exe string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, e := range entries {
		link, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err == nil && filepath.Base(link) == exe {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bowline-mesh/bowline/internal/local"
)

// requireNetns skips unless the test can create network namespaces and
// iptables rules (root with iproute2, iptables and setpriv). CI runs as root.
func requireNetns(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("needs root on Linux: bowline up --netns creates network namespaces and iptables rules")
	}
	for _, p := range []string{"ip", "iptables", "iptables-restore", "setpriv"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("needs %s: apt-get install -y iproute2 iptables util-linux", p)
		}
	}
	// Root in a container without CAP_SYS_ADMIN/NET_ADMIN cannot make namespaces.
	probe := fmt.Sprintf("bowline-probe-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		if strings.Contains(string(out), "not permitted") {
			t.Skipf("root here may not create network namespaces: %s", out)
		}
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	_ = exec.Command("ip", "netns", "del", probe).Run()
}

// TestNetnsBookinfo runs Bookinfo with every replica in its own network
// namespace and iptables capture, as pods in Kubernetes.
func TestNetnsBookinfo(t *testing.T) {
	requireNetns(t)
	bins := binaries(t)
	dir := bookinfoDir(t, bins)

	// Leftovers of a crashed run: the next start removes them.
	run(t, "ip", "netns", "add", "bowline-stale.default")
	_ = exec.Command("iptables", "-w", "-N", "BOWLINE-GUARD").Run()

	m := startUp(t, filepath.Join(bins, "bowline"), dir, "--netns", "--access-log", "json")
	st, err := local.ReadState(filepath.Join(dir, ".bowline"))
	if err != nil {
		t.Fatal(err)
	}
	pods := map[string]local.ReplicaState{}
	for _, w := range st.Workloads {
		ip, err := netip.ParseAddr(w.PodIP)
		if err != nil || !local.PodRange.Contains(ip) || w.Netns != "bowline-"+w.Name+"."+w.Namespace || w.AppPort != 9080 {
			t.Fatalf("replica %s: netns %q pod IP %q app port %d", w.Name, w.Netns, w.PodIP, w.AppPort)
		}
		pods[w.Workload] = w
	}
	if len(pods) != 6 {
		t.Fatalf("want 6 replicas, got %v", st.Workloads)
	}
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), "bowline-stale") {
		t.Error("the stale namespace of a crashed run was not removed at start")
	}

	t.Run("product page shows reviews v1, v2 and v3", func(t *testing.T) {
		seen := map[string]string{}
		for i := 0; i < 60 && len(seen) < 3; i++ {
			p := m.productPage(t, "")
			if p.status != http.StatusOK || p.reviews == "" {
				t.Fatalf("product page: status %d, reviews %q:\n%s", p.status, p.reviews, excerpt(p.body))
			}
			seen[p.reviews] = p.stars
		}
		want := map[string]string{"reviews-v1": "", "reviews-v2": "black", "reviews-v3": "red"}
		for v, stars := range want {
			got, ok := seen[v]
			switch {
			case !ok:
				t.Errorf("%s never answered in 60 requests (saw %v)", v, seen)
			case got != stars:
				t.Errorf("%s showed stars %q, want %q", v, got, stars)
			}
		}
	})

	pp, details := pods["productpage-v1"], pods["details-v1"]

	t.Run("direct pod IP traffic from an app still goes through both sidecars", func(t *testing.T) {
		id := fmt.Sprintf("netns-bypass-%d", time.Now().UnixNano())
		target := net.JoinHostPort(details.PodIP, "9080")
		resp, body := getInNetns(t, pp.Netns, target, "/details/7", id)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"id":7`) {
			t.Fatalf("GET http://%s/details/7 from %s: %d %s", target, pp.Netns, resp.StatusCode, body)
		}
		// The source sidecar handled it (passthrough to the pod IP), then the
		// destination sidecar (inbound to the app over loopback).
		src := waitLogLine(t, pp.SidecarLog, id)
		if !strings.Contains(src, `"upstream_cluster":"PassthroughCluster"`) || !strings.Contains(src, `"upstream_host":"`+target+`"`) {
			t.Errorf("productpage sidecar log line: %s", src)
		}
		dst := waitLogLine(t, details.SidecarLog, id)
		if !strings.Contains(dst, `"upstream_cluster":"inbound|9080||"`) {
			t.Errorf("details sidecar log line: %s", dst)
		}
		metrics := get(t, "http://"+pp.Admin+"/stats/prometheus")
		if !hasSeries(metrics, "istio_requests_total", `reporter="source"`, `source_workload="productpage-v1"`, `destination_service="`+details.PodIP+`"`, `response_code="200"`) {
			t.Errorf("no reporter=source series for the passthrough request in productpage's sidecar metrics:\n%s", grepLines(metrics, "istio_requests_total"))
		}
	})

	t.Run("app to loopback is not captured", func(t *testing.T) {
		id := fmt.Sprintf("netns-loopback-%d", time.Now().UnixNano())
		resp, _ := getInNetns(t, pp.Netns, "127.0.0.1:9080", "/health", id)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET 127.0.0.1:9080/health in %s: %d", pp.Netns, resp.StatusCode)
		}
		time.Sleep(500 * time.Millisecond)
		if data, _ := os.ReadFile(pp.SidecarLog); strings.Contains(string(data), id) {
			t.Error("a loopback request of the app went through its sidecar")
		}
	})

	t.Run("sidecar runs as uid 1337 and the namespace has Istio's chains", func(t *testing.T) {
		rules := run(t, "ip", "netns", "exec", pp.Netns, "iptables", "-t", "nat", "-S")
		for _, want := range []string{"-A ISTIO_INBOUND -p tcp -m tcp --dport 9080 -j ISTIO_IN_REDIRECT",
			"-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001", "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN"} {
			if !strings.Contains(rules, want) {
				t.Errorf("missing %q in %s:\n%s", want, pp.Netns, rules)
			}
		}
		pids := strings.Fields(run(t, "ip", "netns", "pids", pp.Netns))
		var uids []string
		for _, pid := range pids {
			status, _ := os.ReadFile("/proc/" + pid + "/status")
			cmdline, _ := os.ReadFile("/proc/" + pid + "/cmdline")
			for line := range strings.Lines(string(status)) {
				if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" && strings.Contains(string(cmdline), "proxy") {
					uids = append(uids, f[1])
				}
			}
		}
		if len(uids) == 0 || uids[0] != "1337" {
			t.Errorf("sidecar uids in %s: %v, want 1337", pp.Netns, uids)
		}
	})

	m.stop()
	t.Run("nothing is left after shutdown", func(t *testing.T) {
		if out := run(t, "ip", "netns", "list"); strings.Contains(out, "bowline-") {
			t.Errorf("namespaces left: %s", out)
		}
		if out := run(t, "ip", "-o", "link", "show"); strings.Contains(out, "bowline0") || strings.Contains(out, "bwl-") {
			t.Errorf("links left: %s", grepLines(out, "bowline0", "bwl-"))
		}
		if out := run(t, "iptables", "-w", "-S"); strings.Contains(out, "BOWLINE") {
			t.Errorf("iptables rules left: %s", grepLines(out, "BOWLINE"))
		}
		if entries, _ := filepath.Glob("/etc/netns/bowline-*"); len(entries) > 0 {
			t.Errorf("hosts files left: %v", entries)
		}
		if left := processesUnder(dir); len(left) > 0 {
			t.Errorf("processes left: %v", left)
		}
	})
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// getInNetns sends GET path to addr from inside netns, as an app there would
// (not as the sidecar's uid), and returns the response and body.
func getInNetns(t *testing.T, netns, addr, path, requestID string) (*http.Response, string) {
	t.Helper()
	conn, err := dialInNetns(netns, addr)
	if err != nil {
		t.Fatalf("dial %s in %s: %v", addr, netns, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	host, port, _ := net.SplitHostPort(addr)
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s:%s\r\nX-Request-Id: %s\r\nConnection: close\r\n\r\n", path, host, port, requestID)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s%s in %s: %v", addr, path, netns, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// dialInNetns connects from a thread moved into netns; the socket stays in
// that namespace after the thread moves back.
func dialInNetns(netns, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + netns)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		c, derr := net.DialTimeout("tcp", addr, 5*time.Second)
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{c, derr} // the thread stays locked and exits with the goroutine
			return
		}
		runtime.UnlockOSThread()
		done <- result{c, derr}
	}()
	r := <-done
	return r.c, r.err
}

func waitLogLine(t *testing.T, path, needle string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, _ := os.ReadFile(path)
		for line := range strings.Lines(string(data)) {
			if strings.Contains(line, needle) {
				return strings.TrimSpace(line)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no line with %q in %s", needle, path)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

func hasSeries(metrics, name string, labels ...string) bool {
	for line := range strings.Lines(metrics) {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		all := true
		for _, l := range labels {
			all = all && strings.Contains(line, l)
		}
		if all {
			return true
		}
	}
	return false
}

func grepLines(s string, needles ...string) string {
	var out []string
	for line := range strings.Lines(s) {
		for _, n := range needles {
			if strings.Contains(line, n) {
				out = append(out, strings.TrimSpace(line))
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

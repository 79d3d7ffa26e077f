package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// kpod is a pod-like pair of network namespaces made by the test: "pod" and
// "peer", joined by one veth and nothing else, so no packet of theirs can
// reach a real interface. The pod's capture rules come from `bowline
// iptables` run inside it, as the injected istio-init container does.
type kpod struct {
	pod, peer     string
	podIP, peerIP string
}

func newKPod(t *testing.T, tag string) *kpod {
	t.Helper()
	k := &kpod{pod: fmt.Sprintf("bowline-%s-pod-%d", tag, os.Getpid()), peer: fmt.Sprintf("bowline-%s-peer-%d", tag, os.Getpid()),
		podIP: "10.254.200.2", peerIP: "10.254.200.1"}
	for _, ns := range []string{k.pod, k.peer} {
		_ = exec.Command("ip", "netns", "del", ns).Run()
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	// The veth is created inside the namespaces: it never exists on the host.
	run(t, "ip", "-n", k.pod, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", k.peer)
	for _, s := range []struct{ ns, ip string }{{k.pod, k.podIP}, {k.peer, k.peerIP}} {
		run(t, "ip", "-n", s.ns, "link", "set", "lo", "up")
		run(t, "ip", "-n", s.ns, "addr", "add", s.ip+"/30", "dev", "eth0")
		run(t, "ip", "-n", s.ns, "link", "set", "eth0", "up")
	}
	return k
}

// inNetns runs f on a thread moved into netns; sockets it opens stay there.
func inNetns(netns string, f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + netns)
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		ferr := f()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- ferr // the thread stays locked and exits with the goroutine
			return
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	return <-done
}

// whoServer listens on addr in netns and answers each connection with the
// address it came from, then closes it.
func whoServer(t *testing.T, netns, addr string) {
	t.Helper()
	var ln net.Listener
	if err := inNetns(netns, func() (err error) { ln, err = net.Listen("tcp", addr); return }); err != nil {
		t.Fatalf("listen %s in %s: %v", addr, netns, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			_, _ = io.WriteString(c, "from "+host+"\n")
			c.Close()
		}
	}()
}

// whoHTTP serves HTTP on addr in netns, answering with the client's address.
func whoHTTP(t *testing.T, netns, addr string) {
	t.Helper()
	var ln net.Listener
	if err := inNetns(netns, func() (err error) { ln, err = net.Listen("tcp", addr); return }); err != nil {
		t.Fatalf("listen %s in %s: %v", addr, netns, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		_, _ = io.WriteString(w, "from "+host)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// askWho connects to addr from netns and returns the first line it reads.
func askWho(t *testing.T, netns, addr string) string {
	t.Helper()
	c, err := dialInNetns(netns, addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, netns, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read from %s (from %s): %v (got %q)", addr, netns, err, line)
	}
	return strings.TrimSpace(line)
}

// startIn starts a process in netns (optionally as the sidecar's uid 1337)
// and stops it at cleanup; its output goes to log.
func startIn(t *testing.T, netns string, asProxy bool, log io.Writer, prog string, args ...string) {
	t.Helper()
	argv := []string{"netns", "exec", netns}
	if asProxy {
		argv = append(argv, "setpriv", "--reuid=1337", "--regid=1337", "--clear-groups")
	}
	cmd := exec.Command("ip", append(append(argv, prog), args...)...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(unix.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
}

// waitHTTP polls GET url from netns until it answers 200.
func waitHTTP(t *testing.T, netns, addr, path string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := dialInNetns(netns, addr)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, addr)
			resp, rerr := http.ReadResponse(bufio.NewReader(c), nil)
			c.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%s in %s never answered 200", addr, path, netns)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestIPTablesInitPod: `bowline iptables`, run in a pod's network namespace
// with the flags the injector writes, captures every inbound port; a
// connection to a port no one declared still reaches the app — through the
// sidecar's virtualInbound and InboundPassthroughCluster, from 127.0.0.6,
// which the rules let through instead of capturing it again — while a
// declared port goes to the app over loopback and outbound traffic leaves
// through the sidecar.
func TestIPTablesInitPod(t *testing.T) {
	requireNetns(t)
	bowline := filepath.Join(binaries(t), "bowline")
	k := newKPod(t, "ipt")

	rules := run(t, "ip", "netns", "exec", k.pod, bowline, "iptables",
		"-p", "15001", "-z", "15006", "-u", "1337", "-g", "1337", "-m", "REDIRECT",
		"-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020")
	for _, want := range []string{"-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT", "-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN",
		"-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001"} {
		if !strings.Contains(rules, want) {
			t.Fatalf("bowline iptables printed no %q:\n%s", want, rules)
		}
	}
	// Running it again (a restarted init container) replaces, not doubles.
	again := run(t, "ip", "netns", "exec", k.pod, bowline, "iptables")
	if strings.Count(again, "-A PREROUTING -p tcp -j ISTIO_INBOUND") != 1 {
		t.Errorf("second run left duplicate jumps:\n%s", again)
	}

	whoHTTP(t, k.pod, "0.0.0.0:9080")   // declared
	whoServer(t, k.pod, "0.0.0.0:7070") // undeclared
	whoServer(t, k.peer, k.peerIP+":8081")

	// No CA here: plaintext inside the mesh.
	cfgDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(cfgDir, "mtls.yaml"), []byte("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"+
		"metadata:\n  name: default\n  namespace: istio-system\nspec:\n  mtls:\n    mode: DISABLE\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	discoveryLog := &syncBuf{}
	startIn(t, k.pod, false, discoveryLog, bowline, "discovery", "--config-dir", cfgDir, "--insecure-xds",
		"--xds-address", "127.0.0.1:15010", "--debug-address", "127.0.0.1:15014")
	accessLog := &syncBuf{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("discovery:\n%s\nproxy:\n%s", tail(discoveryLog.String(), 30), tail(accessLog.String(), 30))
		}
	})
	startIn(t, k.pod, true, accessLog, bowline, "proxy", "--discovery", "127.0.0.1:15010", "--insecure-xds",
		"--interception-mode", "REDIRECT", "--ip", k.podIP, "--namespace", "default", "--workload", "app",
		"--inbound", "9080=9080", "--admin-address", "127.0.0.1:15000", "--release-binary-pages=false")
	waitHTTP(t, k.pod, "127.0.0.1:15000", "/ready")

	if got := askWho(t, k.peer, k.podIP+":7070"); got != "from 127.0.0.6" {
		t.Errorf("undeclared port 7070 through the sidecar: app saw %q, want a connection from 127.0.0.6", got)
	}
	if resp, body := getInNetns(t, k.peer, k.podIP+":9080", "/", "ipt-declared"); resp.StatusCode != http.StatusOK || body != "from 127.0.0.1" {
		t.Errorf("declared port 9080: %d, app saw %q, want the sidecar's inbound cluster on loopback", resp.StatusCode, body)
	}
	if got := askWho(t, k.pod, k.peerIP+":8081"); got != "from "+k.podIP {
		t.Errorf("outbound to %s:8081: peer saw %q", k.peerIP, got)
	}
	waitFor(t, "access log lines of the three connections", func() bool {
		s := accessLog.String()
		return strings.Contains(s, `"upstream_cluster":"InboundPassthroughCluster"`) && strings.Contains(s, `"upstream_cluster":"inbound|9080||"`) &&
			strings.Contains(s, `"upstream_cluster":"PassthroughCluster"`)
	})
}

// syncBuf collects a process's output for concurrent reads.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds or 10 seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

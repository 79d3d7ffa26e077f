package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// echoGateway is a Gateway on port with a VirtualService answering body
// directly: the ingress gateway alone, no apps.
func echoGateway(name string, port int, body string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: %[1]s}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: %[2]d, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: %[1]s}
spec:
  hosts: ["*"]
  gateways: [%[1]s]
  http:
  - directResponse:
      status: 200
      body: {string: %[3]q}
`, name, port, body)
}

// httpbinKube is the shape of Istio's httpbin.yaml: Kubernetes objects that
// bowline up does not run.
const httpbinKube = `apiVersion: v1
kind: ServiceAccount
metadata: {name: httpbin}
---
apiVersion: v1
kind: Service
metadata: {name: httpbin, labels: {app: httpbin}}
spec:
  ports: [{name: http, port: 8000, targetPort: 8080}]
  selector: {app: httpbin}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: httpbin}
spec:
  replicas: 1
  selector: {matchLabels: {app: httpbin}}
  template:
    metadata: {labels: {app: httpbin}}
    spec:
      containers: [{name: httpbin, image: docker.io/mccutchen/go-httpbin:v2.15.0}]
`

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runUpOnce runs `bowline up` expecting it to exit by itself and returns
// its exit code and stderr.
func runUpOnce(t *testing.T, bowline string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bowline, append([]string{"up"}, args...)...)
	var stderr syncWriter
	cmd.Stderr = &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, stderr.String()
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("bowline up %v did not exit within 30s; stderr:\n%s", args, tail(stderr.String(), 20))
		return 0, ""
	}
}

// listenAddrs returns the local addresses of TCP sockets listening on port
// (IPv4 and IPv6), from /proc/net/tcp*: what the kernel bound, no packets sent.
func listenAddrs(t *testing.T, port int) []string {
	t.Helper()
	var out []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 4 || fields[3] != "0A" { // 0A: LISTEN
				continue
			}
			host, p, ok := strings.Cut(fields[1], ":")
			if n, err := strconv.ParseUint(p, 16, 16); !ok || err != nil || int(n) != port {
				continue
			}
			out = append(out, procAddr(host))
		}
	}
	return out
}

// procAddr turns /proc/net/tcp's little-endian hex IPv4 (or IPv6) into text.
func procAddr(h string) string {
	if len(h) == 8 {
		b, _ := strconv.ParseUint(h, 16, 32)
		return net.IPv4(byte(b), byte(b>>8), byte(b>>16), byte(b>>24)).String()
	}
	ip := make(net.IP, 16)
	for i := 0; i < 4; i++ {
		w, _ := strconv.ParseUint(h[i*8:i*8+8], 16, 32)
		ip[i*4], ip[i*4+1], ip[i*4+2], ip[i*4+3] = byte(w), byte(w>>8), byte(w>>16), byte(w>>24)
	}
	return ip.String()
}

// rawGet sends one HTTP/1.1 request on conn and returns the status and body.
func rawGet(t *testing.T, conn net.Conn, r *bufio.Reader, path string) (int, string, http.Header) {
	t.Helper()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: echo.example\r\n\r\n", path); err != nil {
		t.Fatalf("write on the long-lived connection: %v", err)
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("read on the long-lived connection: %v", err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		b.WriteString(sc.Text())
	}
	return resp.StatusCode, b.String(), resp.Header
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen within 20s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestUpLocalFailureModes: the ingress binds loopback and says so; a port
// in use or a second run on the same directory is refused with a message
// naming what to change; Kubernetes kinds are reported once; adding and
// removing a Gateway neither restarts the gateway nor drops its connections.
func TestUpLocalFailureModes(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds binaries and runs processes")
	}
	bowline := filepath.Join(binaries(t), "bowline")
	dir := filepath.Join(t.TempDir(), "mesh")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "echo.yaml"), echoGateway("echo", 8080, "hello"))
	writeFile(t, filepath.Join(dir, "httpbin.yaml"), httpbinKube)

	t.Run("ingress port in use", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		port := l.Addr().(*net.TCPAddr).Port
		code, stderr := runUpOnce(t, bowline, dir, "--insecure", "--ingress-port", strconv.Itoa(port))
		want := fmt.Sprintf("error: ingress port %d is in use: choose another with --ingress-port\n", port)
		if code == 0 || !strings.HasSuffix(stderr, want) {
			t.Errorf("exit %d, stderr ends %q; want non-zero and %q", code, tail(stderr, 2), want)
		}
	})

	t.Run("xds port in use", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		code, stderr := runUpOnce(t, bowline, dir, "--xds-address", l.Addr().String())
		want := fmt.Sprintf("error: xds port %d is in use: choose another with --xds-address\n", l.Addr().(*net.TCPAddr).Port)
		if code == 0 || stderr != want {
			t.Errorf("exit %d, stderr %q; want non-zero and %q", code, stderr, want)
		}
	})

	m := startUp(t, bowline, dir)
	port := m.ingress[strings.LastIndexByte(m.ingress, ':')+1:]
	portN, _ := strconv.Atoi(port)

	t.Run("ingress on loopback", func(t *testing.T) {
		if want := "http://127.0.0.1:" + port; m.ingress != want {
			t.Errorf("up printed ingress %q, want %q", m.ingress, want)
		}
		if got := listenAddrs(t, portN); len(got) != 1 || got[0] != "127.0.0.1" {
			t.Errorf("listening sockets on port %d: %v, want only 127.0.0.1", portN, got)
		}
	})

	t.Run("second up refused", func(t *testing.T) {
		code, stderr := runUpOnce(t, bowline, dir, "--ingress-port", strconv.Itoa(freePort(t)))
		want := fmt.Sprintf("error: already running (pid %d)\n", m.cmd.Process.Pid)
		if code == 0 || stderr != want {
			t.Errorf("exit %d, stderr %q; want non-zero and %q", code, stderr, want)
		}
	})

	t.Run("kubernetes kinds reported once", func(t *testing.T) {
		logs := m.stderr.String()
		if n := strings.Count(logs, "objects skipped"); n != 1 {
			t.Errorf("skipped objects reported %d times, want once:\n%s", n, tail(logs, 20))
		}
		for _, want := range []string{"level=WARN", "ServiceAccount httpbin (", "Service httpbin (", "Deployment httpbin (", "declare each app as a Workload"} {
			if !strings.Contains(logs, want) {
				t.Errorf("skipped-objects warning lacks %q:\n%s", want, tail(logs, 20))
			}
		}
	})

	t.Run("gateway add and remove keep connections", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(m.ingress, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		code, body, hdr := rawGet(t, conn, r, "/")
		if code != 200 || body != "hello" {
			t.Fatalf("GET / = %d %q (%v), want 200 hello", code, body, hdr)
		}
		// As Istio's ingress gateway answers.
		if got := hdr.Get("server"); got != "istio-envoy" {
			t.Errorf("server header = %q, want istio-envoy", got)
		}
		q := freePort(t)
		second := filepath.Join(dir, "second.yaml")
		writeFile(t, second, echoGateway("second", q, "second"))
		waitUntil(t, "the second Gateway's port serving", func() bool {
			resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d/", q))
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		})
		if code, body, _ := rawGet(t, conn, r, "/"); code != 200 || body != "hello" {
			t.Errorf("after adding a Gateway, GET / on the same connection = %d %q, want 200 hello", code, body)
		}
		if err := os.Remove(second); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the second Gateway's port closed", func() bool { return len(listenAddrs(t, q)) == 0 })
		if code, body, _ := rawGet(t, conn, r, "/"); code != 200 || body != "hello" {
			t.Errorf("after removing a Gateway, GET / on the same connection = %d %q, want 200 hello", code, body)
		}
		logs := m.stderr.String()
		if n := strings.Count(logs, `msg="ingress gateway starting"`); n != 1 {
			t.Errorf("ingress gateway started %d times, want once", n)
		}
		if strings.Contains(logs, "process exited, restarting") {
			t.Errorf("a process restarted:\n%s", tail(logs, 20))
		}
	})
}

// TestUpIngressAddress: --ingress-address 0.0.0.0 binds every interface and
// up says so.
func TestUpIngressAddress(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds binaries and runs processes")
	}
	bowline := filepath.Join(binaries(t), "bowline")
	dir := filepath.Join(t.TempDir(), "mesh")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "echo.yaml"), echoGateway("echo", 8080, "hello"))
	m := startUp(t, bowline, dir, "--insecure", "--ingress-address", "0.0.0.0")
	url, bound, ok := strings.Cut(m.ingress, " ")
	port := url[strings.LastIndexByte(url, ':')+1:]
	if want := "(listening on 0.0.0.0:" + port + ", every interface)"; !ok || bound != want {
		t.Errorf("up printed %q, want the URL then %q", m.ingress, want)
	}
	portN, _ := strconv.Atoi(port)
	// Go binds the IPv4 wildcard as a dual-stack socket ([::]).
	if got := listenAddrs(t, portN); len(got) != 1 || (got[0] != "0.0.0.0" && got[0] != "::") {
		t.Errorf("listening sockets on port %d: %v, want the wildcard address", portN, got)
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET %s/ = %d, want 200", url, resp.StatusCode)
	}
}

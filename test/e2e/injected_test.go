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
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/bowline-mesh/bowline/internal/kube/inject"
)

const injectedPodYAML = `
apiVersion: v1
kind: Pod
metadata:
  name: web-5d9c7b-x2x4k
  namespace: shop
  labels:
    app: web
    version: v2
  annotations:
    prometheus.io/scrape: "true"
    prometheus.io/port: "8080"
    prometheus.io/path: /metrics
    sidecar.istio.io/logLevel: info
spec:
  serviceAccountName: web
  containers:
  - name: web
    image: example/web:1
    ports:
    - name: http
      containerPort: 8080
    readinessProbe:
      httpGet:
        path: /ready
        port: http
`

// kubeExpand replaces $(VAR) in s as the kubelet does with a container's env.
func kubeExpand(s string, env map[string]string) string {
	return regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := env[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// httpInNetns sends one GET from netns and returns status and body.
func httpInNetns(t *testing.T, netns, addr, path string) (int, string) {
	t.Helper()
	c, err := dialInNetns(netns, addr)
	if err != nil {
		return 0, err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: kube-probe/1.37\r\nConnection: close\r\n\r\n", path, addr)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err.Error()
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// TestInjectedPodNetns runs what the injector writes for a pod, in a
// network namespace made like a pod's: the istio-init container's command as
// it is, the istio-proxy container's command and environment with the
// kubelet's $(VAR) expansion (only the control plane and CA settings swapped
// for a plaintext control plane in the namespace: no cluster, no CA here).
// From the peer namespace, as the kubelet and other pods would: the
// rewritten readiness probe answers with the app's readiness, the sidecar's
// own readiness and merged metrics answer on 15021 and 15020, app traffic
// goes through the sidecar, and on SIGTERM a request in flight finishes
// while readiness turns to 503.
func TestInjectedPodNetns(t *testing.T) {
	requireNetns(t)
	bowline := filepath.Join(binaries(t), "bowline")
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict([]byte(injectedPodYAML), &pod); err != nil {
		t.Fatal(err)
	}
	injected, err := inject.Pod(inject.Defaults("bowline/bowline:e2e"), &pod, inject.OwnerOf(&pod))
	if err != nil {
		t.Fatal(err)
	}
	var initC, proxyC *corev1.Container
	for i := range injected.Spec.InitContainers {
		switch c := &injected.Spec.InitContainers[i]; c.Name {
		case inject.InitContainer:
			initC = c
		case inject.ProxyContainer:
			proxyC = c
		}
	}
	if initC == nil || proxyC == nil || proxyC.RestartPolicy == nil || *proxyC.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Fatalf("injected pod has no istio-init or native istio-proxy: %+v", injected.Spec.InitContainers)
	}
	probe := injected.Spec.Containers[0].ReadinessProbe.HTTPGet
	if probe.Path != "/app-health/web/readyz" || probe.Port.IntValue() != inject.StatusPort {
		t.Fatalf("readiness probe not rewritten: %+v", probe)
	}
	if injected.Annotations["prometheus.io/port"] != "15020" {
		t.Fatalf("prometheus.io/port = %q, want the status port", injected.Annotations["prometheus.io/port"])
	}

	k := newKPod(t, "inj")
	// istio-init, exactly as injected.
	run(t, "ip", append([]string{"netns", "exec", k.pod, bowline}, initC.Args...)...)

	// The app: ready on demand, metrics, and a slow path for the drain.
	var ready atomic.Bool
	slowStarted, release := make(chan struct{}), make(chan struct{})
	var ln net.Listener
	if err := inNetns(k.pod, func() (err error) { ln, err = net.Listen("tcp", "0.0.0.0:8080"); return }); err != nil {
		t.Fatal(err)
	}
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ready":
			if !ready.Load() {
				http.Error(w, "warming up", http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, "ready")
		case "/metrics":
			_, _ = io.WriteString(w, "# TYPE web_orders_total counter\nweb_orders_total 3\n")
		case "/slow":
			close(slowStarted)
			<-release
			_, _ = io.WriteString(w, "slow done")
		default:
			_, _ = io.WriteString(w, "web")
		}
	})}
	go func() { _ = app.Serve(ln) }()
	t.Cleanup(func() { _ = app.Close() })

	cfgDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(cfgDir, "mtls.yaml"), []byte("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"+
		"metadata:\n  name: default\n  namespace: istio-system\nspec:\n  mtls:\n    mode: DISABLE\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	discoveryLog := &syncBuf{}
	startIn(t, k.pod, false, discoveryLog, bowline, "discovery", "--config-dir", cfgDir, "--insecure-xds",
		"--xds-address", "127.0.0.1:15010", "--debug-address", "127.0.0.1:15014")

	// The downward API: env and the labels file.
	podinfo, err := os.MkdirTemp("", "bowline-podinfo-") // readable by the sidecar's uid
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(podinfo) })
	if err := os.Chmod(podinfo, 0o755); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for k, v := range injected.Labels {
		lines = append(lines, fmt.Sprintf("%s=%q", k, v))
	}
	if err := os.WriteFile(filepath.Join(podinfo, "labels"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"POD_NAME": pod.Name, "POD_NAMESPACE": pod.Namespace, "INSTANCE_IP": k.podIP,
		"SERVICE_ACCOUNT": pod.Spec.ServiceAccountName, "GOMEMLIMIT": "1073741824"}
	for _, e := range proxyC.Env {
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
		}
	}
	var args []string
	for _, a := range proxyC.Args {
		a = kubeExpand(a, env)
		switch {
		case strings.HasPrefix(a, "--discovery="), strings.HasPrefix(a, "--ca-"), strings.HasPrefix(a, "--trust-domain="):
			continue // no CA in this test: plaintext xDS below
		case strings.HasPrefix(a, "--labels-file="):
			a = "--labels-file=" + filepath.Join(podinfo, "labels")
		}
		args = append(args, a)
	}
	args = append(args, "--discovery=127.0.0.1:15010", "--insecure-xds", "--release-binary-pages=false")
	proxyLog := &syncBuf{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("args: %q\ndiscovery:\n%s\nproxy:\n%s", args, tail(discoveryLog.String(), 20), tail(proxyLog.String(), 30))
		}
	})
	cmdline := []string{"netns", "exec", k.pod, "env"}
	for k, v := range env {
		cmdline = append(cmdline, k+"="+v)
	}
	cmdline = append(append(cmdline, "setpriv", "--reuid=1337", "--regid=1337", "--clear-groups", bowline), args...)
	proxy := exec.Command("ip", cmdline...)
	proxy.Stdout, proxy.Stderr = proxyLog, proxyLog
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = proxy.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = proxy.Process.Kill()
		<-exited
	})

	podAddr := func(p int) string { return fmt.Sprintf("%s:%d", k.podIP, p) }
	// The sidecar's own readiness probe (15021), as the kubelet sends it.
	waitFor(t, "the sidecar's readiness on 15021", func() bool {
		code, _ := httpInNetns(t, k.peer, podAddr(inject.HealthPort), "/healthz/ready")
		return code == http.StatusOK
	})
	// The app's readiness probe, rewritten to the status port.
	if code, body := httpInNetns(t, k.peer, podAddr(inject.StatusPort), probe.Path); code != http.StatusServiceUnavailable || body != "warming up" {
		t.Errorf("rewritten readiness probe while the app warms up: %d %q", code, body)
	}
	ready.Store(true)
	if code, body := httpInNetns(t, k.peer, podAddr(inject.StatusPort), probe.Path); code != http.StatusOK || body != "ready" {
		t.Errorf("rewritten readiness probe: %d %q", code, body)
	}
	// Prometheus scrapes 15020 (the rewritten annotation): the app's metrics
	// are there beside the proxy's.
	if code, body := httpInNetns(t, k.peer, podAddr(inject.StatusPort), "/stats/prometheus"); code != http.StatusOK || !strings.Contains(body, "web_orders_total 3") {
		t.Errorf("merged metrics: %d\n%s", code, body)
	}
	// App traffic goes through the sidecar (inbound capture of 8080).
	if code, body := httpInNetns(t, k.peer, podAddr(8080), "/"); code != http.StatusOK || body != "web" {
		t.Errorf("GET the app through the sidecar: %d %q", code, body)
	}
	waitFor(t, "the sidecar's access log line for the app request", func() bool {
		return strings.Contains(proxyLog.String(), `"upstream_cluster":"inbound|8080||"`)
	})

	// Graceful termination: a request in flight when SIGTERM arrives
	// finishes; readiness fails meanwhile.
	slow := make(chan string, 1)
	go func() {
		code, body := httpInNetns(t, k.peer, podAddr(8080), "/slow")
		slow <- fmt.Sprintf("%d %s", code, body)
	}()
	select {
	case <-slowStarted:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request never reached the app")
	}
	if err := proxy.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var lastCode int
	var lastBody string
	waitFor(t, "readiness to fail while draining", func() bool {
		lastCode, lastBody = httpInNetns(t, k.peer, podAddr(inject.HealthPort), "/healthz/ready")
		return lastCode == http.StatusServiceUnavailable && lastBody == "draining"
	})
	t.Logf("readiness while draining: %d %q", lastCode, lastBody)
	close(release)
	if got := <-slow; got != "200 slow done" {
		t.Errorf("request in flight at SIGTERM: %s, want 200 slow done", got)
	}
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		t.Error("the sidecar did not exit after its drain")
	}
}

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// noCAServices are Bookinfo's details and reviews as ServiceEntries that
// select registered workloads (which run a sidecar: auto mTLS would apply).
const noCAServices = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: details, namespace: default}
spec:
  hosts: [details.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: details}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: reviews}}
`

// noCAStrict asks for what a mesh without a CA cannot give.
const noCAStrict = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec:
  mtls: {mode: STRICT}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: details, namespace: default}
spec:
  host: details
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
`

// proc is a child process whose output is kept for failure messages.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncWriter
}

func startProc(t *testing.T, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(bin, args...), out: &syncWriter{}}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, tail(p.out.String(), 30))
		}
	})
	return p
}

// TestPlaintextWithoutCA runs `bowline discovery --insecure-xds` without a
// CA and Bookinfo's productpage, details and reviews behind sidecars
// without certificates: productpage's calls go sidecar to sidecar in
// plaintext and the page shows details and reviews. STRICT and
// ISTIO_MUTUAL then do not break traffic; discovery lists them as
// problems on /debug/configz.
func TestPlaintextWithoutCA(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds binaries and runs processes")
	}
	bins := binaries(t)
	bowline := filepath.Join(bins, "bowline")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "services.yaml"), noCAServices)
	xdsPort, debugPort := freePort(t), freePort(t)
	xds, debug := fmt.Sprintf("127.0.0.1:%d", xdsPort), fmt.Sprintf("http://127.0.0.1:%d", debugPort)
	disc := startProc(t, "discovery", nil, bowline, "discovery", "--insecure-xds", "--config-dir", dir,
		"--xds-address", xds, "--debug-address", strings.TrimPrefix(debug, "http://"), "--debounce", "50ms")
	waitWithin(t, "discovery ready", 90*time.Second, func() bool { code, _ := httpGet(debug + "/ready"); return code == http.StatusOK })
	if n := strings.Count(disc.out.String(), "no CA: workloads get no certificates"); n != 1 {
		t.Errorf("discovery said %d times that it runs without a CA, want once:\n%s", n, disc.out.String())
	}

	// details and reviews: app on 127.0.0.1, sidecar inbound on its own
	// loopback IP (the workload's address in the registry).
	type app struct{ name, ip, version string }
	for _, a := range []app{{"details", "127.0.0.2", "v1"}, {"reviews", "127.0.0.3", "v1"}} {
		appPort, meshPort := freePort(t), freePort(t)
		startProc(t, a.name, []string{"BIND_ADDR=127.0.0.1", fmt.Sprintf("PORT=%d", appPort), "BOWLINE_WORKLOAD=" + a.name + "-" + a.version},
			filepath.Join(bins, "bookinfo", a.name))
		startProc(t, a.name+" sidecar", nil, bowline, "proxy", "--discovery", xds, "--insecure-xds",
			"--namespace", "default", "--workload", a.name+"-"+a.version, "--service-account", "bookinfo-"+a.name,
			"--labels", "app="+a.name+",version="+a.version, "--ip", a.ip, "--inbound", fmt.Sprintf("%d=%d", meshPort, appPort),
			"--admin-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--access-log", "off", "--drain-duration", "200ms")
		body, _ := json.Marshal(map[string]any{"name": a.name + "-" + a.version, "namespace": "default", "address": a.ip,
			"ports": map[string]uint32{"http": uint32(meshPort)}, "labels": map[string]string{"app": a.name, "version": a.version},
			"serviceAccount": "bookinfo-" + a.name})
		resp, err := http.Post(debug+"/v1/workloads", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Fatalf("register %s: %s", a.name, resp.Status)
		}
	}
	// productpage reaches the others through its sidecar's explicit proxy.
	ppPort, outPort := freePort(t), freePort(t)
	startProc(t, "productpage sidecar", nil, bowline, "proxy", "--discovery", xds, "--insecure-xds",
		"--namespace", "default", "--workload", "productpage-v1", "--service-account", "bookinfo-productpage",
		"--labels", "app=productpage,version=v1", "--ip", "127.0.0.4", "--outbound-http-address", fmt.Sprintf("127.0.0.1:%d", outPort),
		"--admin-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--access-log", "off", "--drain-duration", "200ms")
	startProc(t, "productpage", []string{"BIND_ADDR=127.0.0.1", fmt.Sprintf("PORT=%d", ppPort),
		fmt.Sprintf("HTTP_PROXY=http://127.0.0.1:%d", outPort), "NO_PROXY="}, filepath.Join(bins, "bookinfo", "productpage"))

	page := func() (int, string) { return httpGet(fmt.Sprintf("http://127.0.0.1:%d/productpage", ppPort)) }
	complete := func(body string) bool {
		return strings.Contains(body, `id="details-isbn10"`) && strings.Contains(body, "Reviews served by: reviews-v1")
	}
	var last string
	waitWithin(t, "a product page with details and reviews", 60*time.Second, func() bool {
		code, body := page()
		last = body
		return code == http.StatusOK && complete(body)
	})
	if strings.Contains(last, "currently unavailable") {
		t.Fatalf("page reports an unavailable service:\n%s", excerpt(last))
	}
	// No proxy NACKed anything (SDS secrets it could not have).
	_, syncz := httpGet(debug + "/debug/syncz")
	if strings.Contains(syncz, "NACK") || strings.Contains(syncz, "SDS") {
		t.Errorf("a proxy rejected config: %s", syncz)
	}

	// STRICT and ISTIO_MUTUAL: reported, traffic still flows in plaintext.
	writeFile(t, filepath.Join(dir, "strict.yaml"), noCAStrict)
	wantProblems := []string{
		"PeerAuthentication istio-system/default: spec.mtls.mode STRICT needs workload certificates",
		"DestinationRule default/details: spec.trafficPolicy.tls.mode ISTIO_MUTUAL needs workload certificates",
	}
	waitWithin(t, "the problems on /debug/configz", 90*time.Second, func() bool {
		_, configz := httpGet(debug + "/debug/configz")
		var cz struct {
			MeshProblems []string `json:"meshProblems"`
		}
		if json.Unmarshal([]byte(configz), &cz) != nil {
			return false
		}
		all := strings.Join(cz.MeshProblems, "\n")
		for _, w := range wantProblems {
			if !strings.Contains(all, w) {
				return false
			}
		}
		return true
	})
	for range 5 {
		if code, body := page(); code != http.StatusOK || !complete(body) {
			t.Fatalf("after STRICT and ISTIO_MUTUAL without a CA: %d\n%s", code, excerpt(body))
		}
	}
}

func httpGet(url string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err.Error()
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitWithin polls cond until it holds or limit passes.
func waitWithin(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

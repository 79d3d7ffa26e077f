package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/internal/proxy"
	"github.com/bowline-mesh/bowline/internal/proxy/xdsclient"
)

// TestOutboundTrafficPolicyEndToEnd follows Istio's egress task with an
// app that uses its sidecar as HTTP_PROXY (`bowline up` without --netns): a
// host no ServiceEntry names is reached under the default ALLOW_ANY, and
// refused with 502 once a Sidecar sets REGISTRY_ONLY. The outside server is
// a loopback server this test starts; mesh services keep working throughout.
// (Captured mode's PassthroughCluster: TestNetnsBookinfo.)
func TestOutboundTrafficPolicyEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	outside := startNamedBackend(t, "outside")
	meshBackend := startNamedBackend(t, "echo")
	dir := t.TempDir()
	writeAtomic(t, filepath.Join(dir, "echo.yaml"), fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8000, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: %d}}]
`, meshBackend))
	cp := startSecureDiscovery(t, dir)
	httpProxy := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	sc := &sidecar{log: &syncWriter{}}
	sc.p = proxy.New(sidecarConfig(cp.xds, cp.root, cp.tokenFile(t, "web"), xdsclient.NodeInfo{Type: "sidecar", Namespace: "default",
		Workload: "web", ServiceAccount: "web", Labels: map[string]string{"app": "web"}, IPs: []string{"127.0.0.1"},
		OutboundHTTP: httpProxy}, sc.log))
	sc.run(t, "web", 15*time.Second)

	proxyURL, _ := url.Parse("http://" + httpProxy)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), DisableKeepAlives: true}, Timeout: 10 * time.Second}
	get := func(target string) (int, string) {
		t.Helper()
		resp, err := client.Get(target)
		if err != nil {
			t.Fatalf("GET %s through the sidecar: %v", target, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	outsideURL := fmt.Sprintf("http://127.0.0.1:%d/get?x=1", outside)
	// connect tunnels through the sidecar with CONNECT (as clients do for
	// https:// through HTTP_PROXY) and sends a request inside the tunnel.
	connect := func() (int, string) {
		t.Helper()
		c, err := net.DialTimeout("tcp", httpProxy, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		target := fmt.Sprintf("127.0.0.1:%d", outside)
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
		if err != nil {
			t.Fatalf("CONNECT %s: %v", target, err)
		}
		if resp.StatusCode != 200 {
			return resp.StatusCode, ""
		}
		fmt.Fprintf(c, "GET /tunnel HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target)
		in, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request in the tunnel: %v", err)
		}
		defer in.Body.Close()
		b, _ := io.ReadAll(in.Body)
		return in.StatusCode, string(b)
	}

	t.Run("ALLOW_ANY (default): an unknown host is reached", func(t *testing.T) {
		if code, body := get(outsideURL); code != 200 || body != "outside /get?x=1" {
			t.Errorf("unknown host: got %d %q, want 200 from the outside server", code, body)
		}
		if code, body := connect(); code != 200 || body != "outside /tunnel" {
			t.Errorf("CONNECT to an unknown host: got %d %q, want the outside server through the tunnel", code, body)
		}
		if code, body := get("http://echo:8000/a"); code != 200 || body != "echo /a" {
			t.Errorf("mesh service: got %d %q", code, body)
		}
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(sc.log.String(), `"upstream_cluster":"AllowAnyDynamicDNSCluster"`) {
			if time.Now().After(deadline) {
				t.Fatalf("no access-log line for the passthrough request:\n%s", sc.log.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("REGISTRY_ONLY: an unknown host gets 502, mesh services still work", func(t *testing.T) {
		writeAtomic(t, filepath.Join(dir, "sidecar.yaml"), `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`)
		sc.waitConfig(t, `"block_all"`)
		if code, body := get(outsideURL); code != 502 {
			t.Errorf("unknown host under REGISTRY_ONLY: got %d %q, want 502", code, body)
		}
		if code, _ := connect(); code != 502 {
			t.Errorf("CONNECT to an unknown host under REGISTRY_ONLY: got %d, want 502", code)
		}
		if code, body := get("http://echo:8000/b"); code != 200 || body != "echo /b" {
			t.Errorf("mesh service under REGISTRY_ONLY: got %d %q", code, body)
		}
	})

	t.Run("back to ALLOW_ANY", func(t *testing.T) {
		writeAtomic(t, filepath.Join(dir, "sidecar.yaml"), `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  outboundTrafficPolicy: {mode: ALLOW_ANY}
`)
		sc.waitNoConfig(t, `"block_all"`)
		if code, body := get(outsideURL); code != 200 || body != "outside /get?x=1" {
			t.Errorf("unknown host: got %d %q, want 200", code, body)
		}
	})
}

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/internal/proxy"
	"github.com/bowline-mesh/bowline/internal/proxy/xdsclient"
)

// TestEgressGatewayTLSOriginationEndToEnd follows Istio's "Egress Gateways
// with TLS Origination" task on loopback: an app's plain HTTP request to an
// external host leaves through its sidecar (HTTP_PROXY) to the egress
// gateway (VirtualService bound to mesh and the Gateway), which originates
// TLS to the external HTTPS server with a DestinationRule tls SIMPLE whose
// CA comes from a Secret (credentialName). The "external" server is a local
// HTTPS server; a Secret with another CA makes the origination fail.
func TestEgressGatewayTLSOriginationEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	ca, otherCA := newTestCA(t, "external-ca"), newTestCA(t, "other-ca")
	external := startTLSBackend(t, "external", ca.issue(t, "external", "external.example.com").tls)
	unusedHTTP := startNamedBackend(t, "not-via-the-egress-gateway")
	egressListen := freePort(t)
	dir := t.TempDir()
	caSecret := func(c *testCA) string {
		return secretYAML("external-ca", "Opaque", map[string][]byte{"cacert": c.pem})
	}
	writeAtomic(t, filepath.Join(dir, "secret.yaml"), caSecret(ca))
	// Connections the gateway already opened stay verified (as in Envoy);
	// the CA change is seen by new ones, so the external server closes
	// each connection after one request.
	writeAtomic(t, filepath.Join(dir, "egress.yaml"), fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: default}
spec:
  hosts: [external.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports:
  - {number: 80, name: http-port, protocol: HTTP}
  - {number: 443, name: https-port-for-tls-origination, protocol: HTTPS}
  endpoints: [{address: 127.0.0.1, ports: {http-port: %d, https-port-for-tls-origination: %d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  hosts: [istio-egressgateway.istio-system.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: %d}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway, namespace: default}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [external.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: direct-external-through-egress-gateway, namespace: default}
spec:
  hosts: [external.example.com]
  gateways: [istio-egressgateway, mesh]
  http:
  - match: [{gateways: [mesh], port: 80}]
    route: [{destination: {host: istio-egressgateway.istio-system.svc.cluster.local, port: {number: 80}}}]
  - match: [{gateways: [istio-egressgateway], port: 80}]
    route: [{destination: {host: external.example.com, port: {number: 443}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: originate-tls-for-external, namespace: default}
spec:
  host: external.example.com
  trafficPolicy:
    portLevelSettings:
    - port: {number: 443}
      tls: {mode: SIMPLE, credentialName: external-ca, sni: external.example.com}
`, unusedHTTP, external, egressListen))
	cp := startSecureDiscovery(t, dir)
	gw := startGateway(t, cp, "egressgateway", egressListen)
	httpProxy := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	sc := &sidecar{log: &syncWriter{}}
	sc.p = proxy.New(sidecarConfig(cp.xds, cp.root, cp.tokenFile(t, "sleep"), xdsclient.NodeInfo{Type: "sidecar", Namespace: "default",
		Workload: "sleep", ServiceAccount: "sleep", Labels: map[string]string{"app": "sleep"}, IPs: []string{"127.0.0.1"},
		OutboundHTTP: httpProxy}, sc.log))
	sc.run(t, "sleep", 15*time.Second)

	proxyURL, _ := url.Parse("http://" + httpProxy)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), DisableKeepAlives: true}, Timeout: 10 * time.Second}
	get := func() (int, string) {
		resp, err := client.Get("http://external.example.com/politics")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	t.Run("plain HTTP from the app leaves as TLS from the egress gateway", func(t *testing.T) {
		var code int
		var body string
		waitUntil(t, "the external server answering through the egress gateway", func() bool {
			code, body = get()
			return code == 200
		})
		if want := "external /politics sni=external.example.com"; body != want {
			t.Errorf("body = %q, want %q (TLS originated with the DestinationRule's sni)", body, want)
		}
		logs := gw.log.String()
		if !strings.Contains(logs, "/politics") || !strings.Contains(logs, "outbound|443||external.example.com") {
			t.Errorf("the egress gateway's access log does not show the request to outbound|443||external.example.com:\n%s", tail(logs, 5))
		}
		if strings.Contains(sc.log.String(), "outbound|80||external.example.com") {
			t.Errorf("the sidecar sent the request straight to the external host, not through the egress gateway")
		}
	})

	t.Run("a CA Secret that does not sign the server fails the origination", func(t *testing.T) {
		writeAtomic(t, filepath.Join(dir, "secret.yaml"), caSecret(otherCA))
		waitUntil(t, "the origination refused by the new CA", func() bool {
			code, _ := get()
			return code == http.StatusServiceUnavailable
		})
		if logs := gw.log.String(); !strings.Contains(logs, "UF") {
			t.Errorf("the egress gateway's access log has no UF (upstream connection failure):\n%s", tail(logs, 3))
		}
		writeAtomic(t, filepath.Join(dir, "secret.yaml"), caSecret(ca))
		waitUntil(t, "the origination working again with the right CA", func() bool { code, _ := get(); return code == 200 })
	})
}

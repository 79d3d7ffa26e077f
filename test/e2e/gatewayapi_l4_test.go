package e2e

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGatewayAPIHTTPSAndL4Up drives the other listener kinds of a Gateway
// API Gateway through the gateway `bowline up` runs: an HTTPS listener
// terminating with a certificateRefs Secret in the Gateway's namespace, a
// TLS Passthrough listener on the same port whose TLSRoute picks the
// backend by SNI, and a TCP listener whose TCPRoute splits connections.
func TestGatewayAPIHTTPSAndL4Up(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds binaries and runs processes")
	}
	bins := binaries(t)
	ca := newTestCA(t, "ca")
	gwCert := ca.issue(t, "gateway", "web.example.com")
	nginxCert := ca.issue(t, "nginx", "nginx.example.com")
	nginx := startTLSBackend(t, "nginx", nginxCert.tls)
	web := startNamedBackend(t, "web")
	echoA, echoB := startNamedTCPEcho(t, "tcp-a"), startNamedTCPEcho(t, "tcp-b")
	tcpPort := freePort(t)
	dir := filepath.Join(t.TempDir(), "mesh")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The Secret is in the Gateway's namespace, as the Gateway API has it
	// (Istio Gateways read theirs from the gateway workload's namespace).
	secret := strings.Replace(secretYAML("web-cred", "kubernetes.io/tls", map[string][]byte{"tls.crt": gwCert.certPEM, "tls.key": gwCert.keyPEM}),
		"namespace: istio-system", "namespace: default", 1)
	writeFile(t, filepath.Join(dir, "secrets.yaml"), secret)
	writeFile(t, filepath.Join(dir, "services.yaml"), fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: nginx, namespace: default}
spec:
  hosts: [nginx.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 443, name: tls, protocol: TLS}]
  endpoints: [{address: 127.0.0.1, ports: {tls: %d}}]
---
`, nginx)+serviceEntry("web", 8000, "http", "HTTP", web)+serviceEntry("tcp-a", 9000, "tcp", "TCP", echoA)+serviceEntry("tcp-b", 9000, "tcp", "TCP", echoB))
	writeFile(t, filepath.Join(dir, "gateway-api.yaml"), fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  gatewayClassName: istio
  listeners:
  - name: https
    port: 443
    protocol: HTTPS
    hostname: web.example.com
    tls: {mode: Terminate, certificateRefs: [{name: web-cred}]}
  - name: passthrough
    port: 443
    protocol: TLS
    hostname: nginx.example.com
    tls: {mode: Passthrough}
  - {name: tcp, port: %d, protocol: TCP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{name: edge, sectionName: https}]
  rules: [{backendRefs: [{name: web, port: 8000}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: nginx, namespace: default}
spec:
  parentRefs: [{name: edge, sectionName: passthrough}]
  hostnames: [nginx.example.com]
  rules: [{backendRefs: [{group: networking.istio.io, kind: Hostname, name: nginx.example.com, port: 443}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TCPRoute
metadata: {name: echo, namespace: default}
spec:
  parentRefs: [{name: edge, sectionName: tcp}]
  rules:
  - backendRefs:
    - {name: tcp-a, port: 9000, weight: 1}
    - {name: tcp-b, port: 9000, weight: 1}
`, tcpPort))
	m := startUp(t, filepath.Join(bins, "bowline"), dir)
	addr := strings.TrimPrefix(strings.TrimPrefix(m.ingress, "http://"), "https://")
	trust := &tls.Config{RootCAs: ca.pool}
	waitUntil(t, "the HTTPS listener serving", func() bool {
		r, err := httpsGet(httpsClient(addr, "web.example.com", trust), "web.example.com", "/")
		return err == nil && r.status == 200
	})

	t.Run("HTTPS listener terminates with the certificateRefs Secret", func(t *testing.T) {
		r, err := httpsGet(httpsClient(addr, "web.example.com", trust), "web.example.com", "/x")
		if err != nil || r.status != 200 || r.body != "web /x" {
			t.Fatalf("GET https://web.example.com/x: %v %d %q, want 200 from web", err, r.status, r.body)
		}
		if r.peer.SerialNumber.Cmp(gwCert.leaf.SerialNumber) != 0 {
			t.Errorf("the client saw certificate %v, want web-cred's", r.peer.DNSNames)
		}
	})

	t.Run("TLSRoute: passthrough by SNI", func(t *testing.T) {
		var r tlsResult
		var err error
		waitUntil(t, "the TLSRoute serving", func() bool {
			r, err = httpsGet(httpsClient(addr, "nginx.example.com", trust), "nginx.example.com", "/index.html")
			return err == nil
		})
		if r.status != 200 || r.body != "nginx /index.html sni=nginx.example.com" {
			t.Errorf("got %d %q, want 200 from nginx with its SNI", r.status, r.body)
		}
		if r.peer.SerialNumber.Cmp(nginxCert.leaf.SerialNumber) != 0 {
			t.Errorf("the client saw certificate %v, want the backend's (passthrough does not terminate)", r.peer.DNSNames)
		}
	})

	t.Run("TCPRoute: weighted backends", func(t *testing.T) {
		tcpAddr := fmt.Sprintf("127.0.0.1:%d", tcpPort)
		waitUntil(t, "the TCP listener serving", func() bool { _, err := tcpHello(tcpAddr); return err == nil })
		seen := tcpSpread(t, tcpAddr, 40)
		if seen["tcp-a"] == 0 || seen["tcp-b"] == 0 || len(seen) != 2 {
			t.Errorf("40 connections with weights 1/1 reached %v, want both tcp-a and tcp-b", seen)
		}
	})

	t.Run("bowline status", func(t *testing.T) {
		out := squeeze(m.bowline(t, filepath.Dir(dir), "status", filepath.Base(dir)))
		for _, want := range []string{
			"Gateway default/edge https (1 routes) Programmed True Programmed",
			"Gateway default/edge passthrough (1 routes) Programmed True Programmed",
			"Gateway default/edge tcp (1 routes) Programmed True Programmed",
			"TLSRoute default/nginx Gateway edge/passthrough Accepted True Accepted",
			"TCPRoute default/echo Gateway edge/tcp ResolvedRefs True ResolvedRefs",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("bowline status lacks %q:\n%s", want, out)
			}
		}
	})
}

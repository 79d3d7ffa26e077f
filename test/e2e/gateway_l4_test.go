package e2e

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGatewayPassthroughAndTCPEndToEnd drives the L4 servers of an Istio
// Gateway through the gateway `bowline up` runs: a TLS PASSTHROUGH server
// beside an HTTPS one on the same port, routed by VirtualService tls
// sniHosts to an HTTPS backend that terminates TLS itself, and a TCP
// server whose VirtualService tcp route splits connections by weight,
// then moves them all to one destination.
func TestGatewayPassthroughAndTCPEndToEnd(t *testing.T) {
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
	writeFile(t, filepath.Join(dir, "secrets.yaml"),
		secretYAML("web-cred", "kubernetes.io/tls", map[string][]byte{"tls.crt": gwCert.certPEM, "tls.key": gwCert.keyPEM}))
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
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: default}
spec:
  hosts: [web.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8000, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: %d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tcp-echo, namespace: default}
spec:
  hosts: [tcp-echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  endpoints:
  - {address: 127.0.0.1, ports: {tcp: %d}, labels: {version: a}}
  - {address: 127.0.0.1, ports: {tcp: %d}, labels: {version: b}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tcp-echo, namespace: default}
spec:
  host: tcp-echo.default.svc.cluster.local
  subsets: [{name: a, labels: {version: a}}, {name: b, labels: {version: b}}]
`, nginx, web, echoA, echoB))
	gateway := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https-web, protocol: HTTPS}
    hosts: [web.example.com]
    tls: {mode: SIMPLE, credentialName: web-cred}
  - port: {number: 443, name: tls-nginx, protocol: TLS}
    hosts: [nginx.example.com]
    tls: {mode: PASSTHROUGH}
  - port: {number: %d, name: tcp, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web.example.com]
  gateways: [edge]
  http:
  - route: [{destination: {host: web.default.svc.cluster.local, port: {number: 8000}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: nginx, namespace: default}
spec:
  hosts: [nginx.example.com]
  gateways: [edge]
  tls:
  - match: [{port: 443, sniHosts: [nginx.example.com]}]
    route: [{destination: {host: nginx.example.com, port: {number: 443}}}]
---
`, tcpPort)
	tcpRoute := func(wa, wb int) string {
		return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo, namespace: default}
spec:
  hosts: ["*"]
  gateways: [edge]
  tcp:
  - match: [{port: %d}]
    route:
    - {destination: {host: tcp-echo.default.svc.cluster.local, subset: a, port: {number: 9000}}, weight: %d}
    - {destination: {host: tcp-echo.default.svc.cluster.local, subset: b, port: {number: 9000}}, weight: %d}
`, tcpPort, wa, wb)
	}
	writeFile(t, filepath.Join(dir, "gateway.yaml"), gateway+tcpRoute(50, 50))
	m := startUp(t, filepath.Join(bins, "bowline"), dir)
	addr := strings.TrimPrefix(strings.TrimPrefix(m.ingress, "http://"), "https://")
	trust := &tls.Config{RootCAs: ca.pool}
	waitUntil(t, "the HTTPS server serving", func() bool {
		r, err := httpsGet(httpsClient(addr, "web.example.com", trust), "web.example.com", "/")
		return err == nil && r.status == 200
	})

	t.Run("PASSTHROUGH: the backend terminates TLS, chosen by SNI", func(t *testing.T) {
		r, err := httpsGet(httpsClient(addr, "nginx.example.com", trust), "nginx.example.com", "/index.html")
		if err != nil {
			t.Fatalf("GET https://nginx.example.com/index.html through the gateway: %v", err)
		}
		if r.status != 200 || r.body != "nginx /index.html sni=nginx.example.com" {
			t.Errorf("got %d %q, want 200 from nginx with its SNI", r.status, r.body)
		}
		if r.peer.SerialNumber.Cmp(nginxCert.leaf.SerialNumber) != 0 {
			t.Errorf("the client saw certificate %v, want the backend's (passthrough does not terminate)", r.peer.DNSNames)
		}
		// The HTTPS server on the same port still terminates with its own certificate.
		w, err := httpsGet(httpsClient(addr, "web.example.com", trust), "web.example.com", "/x")
		if err != nil || w.status != 200 || w.body != "web /x" || w.peer.SerialNumber.Cmp(gwCert.leaf.SerialNumber) != 0 {
			t.Errorf("HTTPS beside PASSTHROUGH: %v %d %q", err, w.status, w.body)
		}
	})

	tcpAddr := fmt.Sprintf("127.0.0.1:%d", tcpPort)
	t.Run("TCP: weighted destinations", func(t *testing.T) {
		waitUntil(t, "the TCP server serving", func() bool { _, err := tcpHello(tcpAddr); return err == nil })
		seen := tcpSpread(t, tcpAddr, 40)
		if seen["tcp-a"] == 0 || seen["tcp-b"] == 0 || len(seen) != 2 {
			t.Errorf("40 connections with weights 50/50 reached %v, want both tcp-a and tcp-b", seen)
		}
	})

	t.Run("TCP: weights moved to one destination", func(t *testing.T) {
		writeFile(t, filepath.Join(dir, "gateway.yaml"), gateway+tcpRoute(0, 100))
		waitUntil(t, "connections reaching only tcp-b", func() bool {
			for range 10 {
				if name, err := tcpHello(tcpAddr); err != nil || name != "tcp-b" {
					return false
				}
			}
			return true
		})
	})
}

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/internal/proxy"
	"github.com/bowline-mesh/bowline/internal/proxy/xdsclient"
)

// This file follows Istio's "authz-ingress" and "jwt-route" tasks at an
// ingress gateway: an AuthorizationPolicy and a RequestAuthentication that
// select `istio: ingressgateway` in istio-system are enforced by the
// gateway itself, its JWKS is fetched from the issuer, and a VirtualService
// routes on the verified `groups` claim.

// startGateway runs Istio's istio-<name> gateway (a router labelled istio:
// <name> in istio-system, as `bowline up` starts istio-ingressgateway)
// serving the Gateway port 80 on listen; name is ingressgateway or
// egressgateway.
func startGateway(t *testing.T, cp *meshCP, name string, listen int) *sidecar {
	t.Helper()
	workload := "istio-" + name
	sa := workload + "-service-account"
	tokenFile := filepath.Join(cp.dir, sa+".token")
	if err := os.WriteFile(tokenFile, []byte(cp.tokens.Mint("istio-system", sa)), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := &sidecar{log: &syncWriter{}}
	gw.p = proxy.New(sidecarConfig(cp.xds, cp.root, tokenFile, xdsclient.NodeInfo{Type: "router", Namespace: "istio-system",
		Workload: workload, ServiceAccount: sa,
		Labels: map[string]string{"istio": name, "app": workload}, IPs: []string{"127.0.0.1"},
		GatewayPorts: map[uint32]uint32{80: uint32(listen)}}, gw.log))
	gw.run(t, name, 15*time.Second)
	return gw
}

func TestGatewayPoliciesEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	keys := newJWTKeys(t)
	var jwksFetches atomic.Int32
	issuer := startHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/jwks.json" {
			http.NotFound(w, r)
			return
		}
		jwksFetches.Add(1)
		w.Header().Set("content-type", "application/json")
		fmt.Fprint(w, keys.jwks())
	}))
	v1, v2 := startNamedBackend(t, "httpbin-v1"), startNamedBackend(t, "httpbin-v2")
	dir := t.TempDir()
	writeAtomic(t, filepath.Join(dir, "httpbin.yaml"), fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8000, name: http, protocol: HTTP}]
  endpoints:
  - {address: 127.0.0.1, ports: {http: %d}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {http: %d}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin, namespace: default}
spec:
  host: httpbin.default.svc.cluster.local
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: httpbin-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: default}
spec:
  hosts: ["*"]
  gateways: [httpbin-gateway]
  http:
  - match:
    - uri: {prefix: /headers}
      headers:
        "@request.auth.claims.groups": {exact: group1}
    route:
    - destination: {host: httpbin.default.svc.cluster.local, port: {number: 8000}, subset: v2}
  - route:
    - destination: {host: httpbin.default.svc.cluster.local, port: {number: 8000}, subset: v1}
`, v1, v2))
	listen := freePort(t)
	gw := startGateway(t, startSecureDiscovery(t, dir), "ingressgateway", listen)
	get := func(path, token string) rawResponse {
		return sendRaw(t, listen, rawRequest{path: path, host: "httpbin.example.com", token: token})
	}
	if r := get("/ip", ""); r.status != 200 || r.body != "httpbin-v1 /ip" {
		t.Fatalf("no policy: got %d %q, want 200 from httpbin-v1", r.status, r.body)
	}

	t.Run("authz-ingress: DENY selecting the gateway", func(t *testing.T) {
		writeAtomic(t, filepath.Join(dir, "deny.yaml"), `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-ip, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/ip"]}}]
`)
		gw.waitConfig(t, "policy[deny-ip]")
		if r := get("/ip", ""); r.status != 403 || r.body != "RBAC: access denied" {
			t.Errorf("/ip: got %d %q, want 403 RBAC: access denied", r.status, r.body)
		}
		if r := get("/status/200", ""); r.status != 200 {
			t.Errorf("/status/200: got %d %q, want 200", r.status, r.body)
		}
		// A root-namespace policy without selector applies mesh-wide, gateways included.
		writeAtomic(t, filepath.Join(dir, "deny.yaml"), `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: mesh-deny-delete, namespace: istio-system}
spec:
  action: DENY
  rules:
  - to: [{operation: {methods: ["DELETE"]}}]
`)
		gw.waitConfig(t, "policy[mesh-deny-delete]")
		if r := sendRaw(t, listen, rawRequest{method: http.MethodDelete, path: "/anything", host: "httpbin.example.com"}); r.status != 403 {
			t.Errorf("DELETE: got %d %q, want 403", r.status, r.body)
		}
		if r := get("/ip", ""); r.status != 200 {
			t.Errorf("/ip after the DENY was replaced: got %d %q, want 200", r.status, r.body)
		}
		// ports name the Gateway server port (80), whatever port the gateway listens on.
		writeAtomic(t, filepath.Join(dir, "deny.yaml"), `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-port, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules:
  - to: [{operation: {ports: ["80"], paths: ["/on-80"]}}]
  - to: [{operation: {ports: ["81"], paths: ["/on-81"]}}]
`)
		gw.waitConfig(t, "policy[deny-port]")
		if r := get("/on-80", ""); r.status != 403 {
			t.Errorf("/on-80 with a DENY for port 80: got %d %q, want 403", r.status, r.body)
		}
		if r := get("/on-81", ""); r.status != 200 {
			t.Errorf("/on-81 with a DENY for port 81 only: got %d %q, want 200", r.status, r.body)
		}
	})

	t.Run("jwt-route: RequestAuthentication and claims routing", func(t *testing.T) {
		writeAtomic(t, filepath.Join(dir, "jwt.yaml"), fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: ingress-jwt, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  jwtRules:
  - issuer: %s
    jwksUri: http://127.0.0.1:%d/jwks.json
`, jwtIssuer, issuer))
		gw.waitConfig(t, fmt.Sprintf("127.0.0.1:%d/jwks.json", issuer))
		group1 := keys.token(t, "RS256", map[string]any{"groups": []string{"group1", "group2"}})
		other := keys.token(t, "ES256", map[string]any{"groups": []string{"group2"}})
		scalar := keys.token(t, "RS256", map[string]any{"groups": "group1"})

		r := get("/headers", "deadbeef")
		if r.status != 401 || r.body != "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections" {
			t.Errorf("malformed token: got %d %q, want 401 with Envoy's text", r.status, r.body)
		}
		if r := get("/headers", forged(group1, other)); r.status != 401 || r.body != "Jwt verification fails" {
			t.Errorf("forged token: got %d %q, want 401 Jwt verification fails", r.status, r.body)
		}
		if jwksFetches.Load() == 0 {
			t.Errorf("the gateway never fetched the JWKS from the issuer")
		}
		for _, c := range []struct {
			name, token, want string
		}{
			{"no token: default route", "", "httpbin-v1 /headers"},
			{"groups holds group1: v2", group1, "httpbin-v2 /headers"},
			{"groups is the string group1: v2", scalar, "httpbin-v2 /headers"},
			{"groups without group1: default route", other, "httpbin-v1 /headers"},
		} {
			if r := get("/headers", c.token); r.status != 200 || r.body != c.want {
				t.Errorf("%s: got %d %q, want 200 %q", c.name, r.status, r.body, c.want)
			}
		}
		// A header of the same name is no claim: it cannot pick the route.
		r = sendRaw(t, listen, rawRequest{path: "/headers", host: "httpbin.example.com",
			headers: map[string]string{"@request.auth.claims.groups": "group1"}})
		if r.status == 200 && strings.HasPrefix(r.body, "httpbin-v2") {
			t.Errorf("a request header chose the claims route: %q", r.body)
		}
	})
}

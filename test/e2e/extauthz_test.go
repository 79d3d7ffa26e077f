package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/internal/proxy/extauthz/authztest"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// This file drives AuthorizationPolicy action CUSTOM end to end: a client
// sidecar calls prod/echo through its sidecar over mTLS; the echo sidecar
// asks a real authorization service (authztest, Istio's samples/extauthz
// behaviour) registered as ext-authz.foo.svc.cluster.local through a
// ServiceEntry, over Envoy's gRPC API and over its HTTP protocol, as the
// MeshConfig extensionProviders in the config directory say.

// extAuthzHost is the authorization service's host.
const extAuthzHost = "ext-authz.foo.svc.cluster.local"

// headersBackend answers "echo METHOD URI" and the ext_authz headers the
// request carried upstream.
func headersBackend(t *testing.T) int {
	return startHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "echo %s %s result=%s override=%s failed-open=%s", r.Method, r.URL.RequestURI(),
			r.Header.Get(authztest.ResultHeader), r.Header.Get(authztest.OverrideHeader), r.Header.Get("x-envoy-auth-failure-mode-allowed"))
	}))
}

type extAuthzResp struct {
	status int
	body   string
	header http.Header
}

func (c *client) do(t *testing.T, path string, hdr map[string]string) extAuthzResp {
	t.Helper()
	rq, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s:%d%s", meshHost, meshPort, path), nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		rq.Header.Set(k, v)
	}
	resp, err := c.hc.Do(rq)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return extAuthzResp{resp.StatusCode, string(b), resp.Header}
}

// meshConfigMap is the mesh ConfigMap with the given extensionProviders YAML
// (indented by four spaces under extensionProviders).
func meshConfigMap(providers string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |\n    extensionProviders:\n" + providers
}

func TestExtAuthzCustomEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	authzSrv, err := authztest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(authzSrv.Stop)
	_, grpcPort, _ := net.SplitHostPort(authzSrv.GRPCAddr())
	_, httpPort, _ := net.SplitHostPort(authzSrv.HTTPAddr())

	m := startMesh(t)
	writeAtomic(t, filepath.Join(m.configDir, "ext-authz-service.yaml"), fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext-authz, namespace: foo}
spec:
  hosts: [%s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 9000, name: grpc, protocol: GRPC}
  - {number: 8000, name: http, protocol: HTTP}
  endpoints:
  - {address: 127.0.0.1, ports: {grpc: %s, http: %s}}
`, extAuthzHost, grpcPort, httpPort))
	backendPort := headersBackend(t)
	inPort := freePort(t)
	server := m.startSidecar(t, sidecarOptions{namespace: "prod", sa: "echo", workload: "echo", inbound: map[uint32]uint32{uint32(inPort): uint32(backendPort)}})
	if err := m.reg.Register(registry.Workload{Name: "echo", Namespace: "prod", Address: "127.0.0.1",
		Ports: map[string]uint32{"http": uint32(inPort)}, Labels: map[string]string{"app": "echo"}, ServiceAccount: "echo", Healthy: true}); err != nil {
		t.Fatal(err)
	}
	frontendSC := m.startSidecar(t, sidecarOptions{namespace: "prod", sa: "frontend", workload: "frontend", outbound: true})
	frontend := newClient("prod/frontend", frontendSC)
	t.Cleanup(frontend.close)
	frontendSC.waitConfig(t, "outbound|8080||"+meshHost)
	waitAnswer(t, frontend, "/ready-check")

	meshFile := filepath.Join(m.configDir, "mesh.yaml")
	policyFile := filepath.Join(m.configDir, "custom-policy.yaml")
	n := 0
	// apply installs one provider (YAML after "name: NAME") and a CUSTOM
	// policy on /ext/* naming it, plus extra policies, and waits until the
	// echo sidecar has both.
	apply := func(t *testing.T, provider, extra string) string {
		t.Helper()
		n++
		name := "authz-" + strconv.Itoa(n)
		writeAtomic(t, meshFile, meshConfigMap("    - name: "+name+"\n"+provider))
		writeAtomic(t, policyFile, fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext-%s, namespace: prod}
spec:
  selector: {matchLabels: {app: echo}}
  action: CUSTOM
  provider: {name: %s}
  rules:
  - to: [{operation: {paths: ["/ext/*"]}}]
%s`, name, name, extra))
		server.waitConfig(t, "istio-ext-authz-"+name+"-ns[prod]-policy[ext-"+name+"]")
		return name
	}
	grpcProvider := func(opts string) string {
		return "      envoyExtAuthzGrpc: {service: " + extAuthzHost + ", port: 9000" + opts + "}\n"
	}
	httpProvider := func(opts string) string {
		return "      envoyExtAuthzHttp: {service: " + extAuthzHost + ", port: 8000, includeRequestHeadersInCheck: [x-ext-authz]" + opts + "}\n"
	}
	allowed := func(t *testing.T, path, wantOverride string) {
		t.Helper()
		r := frontend.do(t, path, map[string]string{authztest.CheckHeader: authztest.AllowValue, authztest.OverrideHeader: "from-client"})
		want := fmt.Sprintf("echo GET %s result=%s override=%s failed-open=", path, authztest.ResultAllowed, wantOverride)
		if r.status != 200 || r.body != want {
			t.Errorf("GET %s with x-ext-authz: allow: %d %q, want 200 %q", path, r.status, r.body, want)
		}
	}
	denied := func(t *testing.T, path string) extAuthzResp {
		t.Helper()
		r := frontend.do(t, path, map[string]string{authztest.CheckHeader: "deny", authztest.OverrideHeader: "from-client"})
		if r.status != 403 || r.body != authztest.DenyBody || r.header.Get(authztest.ResultHeader) != authztest.ResultDenied {
			t.Errorf("GET %s with x-ext-authz: deny: %d %q %s=%q, want 403 %q from the authorizer", path, r.status, r.body,
				authztest.ResultHeader, r.header.Get(authztest.ResultHeader), authztest.DenyBody)
		}
		return r
	}
	notChecked := func(t *testing.T, path string) {
		t.Helper()
		r := frontend.do(t, path, nil)
		if want := "echo GET " + path + " result= override= failed-open="; r.status != 200 || r.body != want {
			t.Errorf("GET %s (no CUSTOM rule matches): %d %q, want 200 %q without a check", path, r.status, r.body, want)
		}
	}

	t.Run("gRPC provider allows with x-ext-authz: allow and denies without", func(t *testing.T) {
		apply(t, grpcProvider(""), "")
		before := len(authzSrv.Checks())
		allowed(t, "/ext/a", authztest.OverrideGRPCValue) // ok_response headers overwrite the client's
		r := denied(t, "/ext/b")
		if r.header.Get(authztest.OverrideHeader) != authztest.OverrideGRPCValue {
			t.Errorf("denied_response headers reach the client: %v", r.header)
		}
		notChecked(t, "/other")
		checks := authzSrv.Checks()[before:]
		if len(checks) != 2 {
			t.Fatalf("%d gRPC checks for 3 requests, want 2 (only /ext/* is CUSTOM)", len(checks))
		}
		a := checks[0].GetAttributes()
		if p := a.GetSource().GetPrincipal(); p != "spiffe://cluster.local/ns/prod/sa/frontend" {
			t.Errorf("check source principal %q, want the client's SPIFFE ID", p)
		}
		if p := a.GetDestination().GetPrincipal(); p != "spiffe://cluster.local/ns/prod/sa/echo" {
			t.Errorf("check destination principal %q, want the server's SPIFFE ID", p)
		}
		if h := a.GetRequest().GetHttp(); h.GetPath() != "/ext/a" || h.GetMethod() != "GET" || h.GetHeaders()[authztest.CheckHeader] != authztest.AllowValue {
			t.Errorf("check request attributes %v", h)
		}
	})

	t.Run("HTTP provider: included headers, headersToUpstreamOnAllow, headersToDownstreamOnDeny", func(t *testing.T) {
		apply(t, httpProvider(", headersToUpstreamOnAllow: [x-ext-authz-check-result], headersToDownstreamOnDeny: [x-ext-authz-check-result]"), "")
		_, before := authzSrv.HTTPChecks()
		allowed(t, "/ext/a", "from-client") // the override header is not in headersToUpstreamOnAllow
		r := denied(t, "/ext/b")
		if v := r.header.Get(authztest.OverrideHeader); v != "" {
			t.Errorf("a header not in headersToDownstreamOnDeny reached the client: %s: %q", authztest.OverrideHeader, v)
		}
		notChecked(t, "/other")
		checks, _ := authzSrv.HTTPChecks()
		checks = checks[len(before):]
		if len(checks) != 2 {
			t.Fatalf("%d HTTP checks for 3 requests, want 2", len(checks))
		}
		if c := checks[0]; c.URL.Path != "/ext/a" || c.Header.Get(authztest.OverrideHeader) != "" || c.Host != fmt.Sprintf("%s:%d", meshHost, meshPort) {
			t.Errorf("HTTP check %s host %s headers %v: want the client's path and host and only included headers", c.URL, c.Host, c.Header)
		}
	})

	t.Run("CUSTOM, then DENY, then ALLOW", func(t *testing.T) {
		apply(t, grpcProvider(""), `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-secret, namespace: prod}
spec:
  selector: {matchLabels: {app: echo}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/ext/secret"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-ext, namespace: prod}
spec:
  selector: {matchLabels: {app: echo}}
  action: ALLOW
  rules:
  - to: [{operation: {paths: ["/ext/*"]}}]
`)
		denied(t, "/ext/secret") // CUSTOM refuses first: the authorizer's answer, not RBAC's
		r := frontend.do(t, "/ext/secret", map[string]string{authztest.CheckHeader: authztest.AllowValue})
		if r.status != 403 || r.body != "RBAC: access denied" {
			t.Errorf("allowed by the authorizer, then DENY: %d %q, want 403 RBAC: access denied", r.status, r.body)
		}
		allowed(t, "/ext/a", authztest.OverrideGRPCValue)
		if r := frontend.do(t, "/other", nil); r.status != 403 || r.body != "RBAC: access denied" {
			t.Errorf("GET /other outside the ALLOW: %d %q, want 403 RBAC: access denied", r.status, r.body)
		}
	})

	t.Run("authorizer down: failOpen, fail closed, statusOnError", func(t *testing.T) {
		authzSrv.Stop()
		t.Cleanup(func() { _ = authzSrv.Restart() })
		for _, tc := range []struct {
			name, provider string
			status         int
		}{
			{"gRPC fail closed", grpcProvider(", timeout: 2s"), 403},
			{"gRPC statusOnError 503", grpcProvider(", timeout: 2s, statusOnError: \"503\""), 503},
			{"gRPC failOpen", grpcProvider(", timeout: 2s, failOpen: true"), 200},
			{"HTTP fail closed", httpProvider(", timeout: 2s"), 403},
			{"HTTP statusOnError 500", httpProvider(", timeout: 2s, statusOnError: \"500\""), 500},
			{"HTTP failOpen", httpProvider(", timeout: 2s, failOpen: true"), 200},
		} {
			t.Run(tc.name, func(t *testing.T) {
				apply(t, tc.provider, "")
				r := frontend.do(t, "/ext/a", nil)
				if r.status != tc.status {
					t.Errorf("authorizer down: %d %q, want %d", r.status, r.body, tc.status)
				}
				if tc.status == 200 && r.body != "echo GET /ext/a result= override= failed-open=" {
					t.Errorf("failOpen: body %q, want the backend's answer", r.body)
				}
				if tc.status != 200 && r.body != "" {
					t.Errorf("fail closed: body %q, want none", r.body)
				}
			})
		}
		if err := authzSrv.Restart(); err != nil {
			t.Fatal(err)
		}
		name := apply(t, grpcProvider(", timeout: 2s"), "")
		deadline := time.Now().Add(15 * time.Second)
		for frontend.do(t, "/ext/a", map[string]string{authztest.CheckHeader: authztest.AllowValue}).status != 200 {
			if time.Now().After(deadline) {
				t.Fatalf("provider %s: no 200 within 15s of the authorizer coming back", name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("UAEX in the access log and metrics", func(t *testing.T) {
		apply(t, grpcProvider(""), "")
		denied(t, "/ext/metrics")
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(server.log.String(), `"response_flags":"UAEX"`) {
			if time.Now().After(deadline) {
				t.Fatalf("no UAEX in the echo sidecar's access log:\n%s", tail(server.log.String(), 20))
			}
			time.Sleep(30 * time.Millisecond)
		}
		metrics := getBody(t, "http://"+server.p.AdminAddr()+"/stats/prometheus")
		if !hasSeries(metrics, "istio_requests_total", `response_code="403"`, `response_flags="UAEX"`) {
			t.Errorf("no istio_requests_total with response_flags=UAEX:\n%s", grepLines(metrics, "istio_requests_total"))
		}
		if !hasSeries(metrics, "envoy_ext_authz_decisions_total", `decision="denied"`) {
			t.Errorf("no ext_authz denied counter:\n%s", grepLines(metrics, "ext_authz"))
		}
	})
	_ = os.Remove(policyFile)
}

package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
)

// TestPerRoutePolicyOverridesEndToEnd: a RequestAuthentication and an
// AuthorizationPolicy (only requests with a verified token) on a sidecar's
// inbound port, and an EnvoyFilter adding routes whose
// typed_per_filter_config changes the policy there, as users write them for
// health checks: RBACPerRoute without rbac turns every RBAC filter off on
// the route, PerRouteConfig disabled turns jwt_authn off, RBACPerRoute with
// rbac puts its own rules in place of the policy's. Other routes keep the
// policy.
func TestPerRoutePolicyOverridesEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	keys := newJWTKeys(t)
	backend := startHTTPBackend(t)
	inPort := freePort(t)
	dir := t.TempDir()
	jwksJSON, _ := json.Marshal(keys.jwks())
	writeAtomic(t, filepath.Join(dir, "policy.yaml"), fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: web-jwt, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  jwtRules:
  - issuer: %s
    audiences: [%s]
    jwks: %s
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-jwt, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  rules:
  - from: [{source: {requestPrincipals: ["*"]}}]
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: per-route, namespace: default}
spec:
  workloadSelector: {labels: {app: web}}
  configPatches:
  - applyTo: HTTP_ROUTE
    match: {context: SIDECAR_INBOUND}
    patch:
      operation: INSERT_FIRST
      value:
        name: healthz
        match: {prefix: /healthz}
        direct_response: {status: 200, body: {inline_string: healthy}}
        typed_per_filter_config:
          envoy.filters.http.rbac:
            "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
          envoy.filters.http.jwt_authn:
            "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig
            disabled: true
  - applyTo: HTTP_ROUTE
    match: {context: SIDECAR_INBOUND}
    patch:
      operation: INSERT_FIRST
      value:
        name: rbac-off
        match: {prefix: /rbac-off}
        direct_response: {status: 200, body: {inline_string: rbac-off}}
        typed_per_filter_config:
          envoy.filters.http.rbac:
            "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
  - applyTo: HTTP_ROUTE
    match: {context: SIDECAR_INBOUND}
    patch:
      operation: INSERT_FIRST
      value:
        name: locked
        match: {prefix: /locked}
        direct_response: {status: 200, body: {inline_string: locked}}
        typed_per_filter_config:
          envoy.filters.http.rbac:
            "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
            rbac:
              rules:
                action: DENY
                policies:
                  everyone:
                    permissions: [{any: true}]
                    principals: [{any: true}]
`, jwtIssuer, jwtAudience, jwksJSON))
	sc := startSidecar(t, startSecureDiscovery(t, dir), map[uint32]uint32{uint32(inPort): uint32(backend)})
	sc.waitConfig(t, "RBACPerRoute")

	good := keys.token(t, "RS256", nil)
	bad := keys.token(t, "RS256", map[string]any{"aud": "other"})
	for _, c := range []struct {
		name   string
		path   string
		token  string
		status int
		body   string
	}{
		{"policy: no token", "/app", "", 403, "RBAC: access denied"},
		{"policy: token", "/app", good, 200, "backend GET /app"},
		{"policy: bad token", "/app", bad, 401, "Audiences in Jwt are not allowed"},
		{"both off: no token", "/healthz", "", 200, "healthy"},
		{"both off: bad token is not even checked", "/healthz", bad, 200, "healthy"},
		{"rbac off: no token", "/rbac-off", "", 200, "rbac-off"},
		{"rbac off, jwt on: bad token", "/rbac-off", bad, 401, "Audiences in Jwt are not allowed"},
		{"route's own rbac: token", "/locked", good, 403, "RBAC: access denied"},
	} {
		got := sendRaw(t, inPort, rawRequest{path: c.path, token: c.token})
		if got.status != c.status || got.body != c.body {
			t.Errorf("%s: GET %s: got %d %q, want %d %q", c.name, c.path, got.status, got.body, c.status, c.body)
		}
	}
}

package xdsconfig

import (
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"

	"github.com/bowline-mesh/bowline/internal/proxy/authz"
)

// RBACFilter is a checked envoy.extensions.filters.http.rbac.v3.RBAC: the
// compiled engine. An HCM may carry several (Istio's CUSTOM, AUDIT, DENY and
// ALLOW sets); each is its own filter and every one must allow a request.
type RBACFilter struct {
	// Engine evaluates requests; immutable, shared by all requests.
	Engine *authz.Engine
}

// JWTAuthnFilter is a checked
// envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication. It has been
// compiled once with jwtauthn.New (so it is known to be valid); the proxy
// compiles it again with its JWKS fetcher, which this package cannot hold.
type JWTAuthnFilter struct {
	// Config is the filter's config as received; never modified.
	Config *jwtv3.JwtAuthentication
	// ClearRouteCache: some provider has clear_route_cache, so the route
	// is chosen again after a token was verified (claims routing).
	ClearRouteCache bool
}

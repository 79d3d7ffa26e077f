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

// RBACPerRoute is a checked envoy.extensions.filters.http.rbac.v3.RBACPerRoute
// of a route or virtual host: every RBAC filter of that name is off there
// (Disabled, when the per-route config has no rbac), or evaluates Engine
// instead of its own.
type RBACPerRoute struct {
	Disabled bool
	Engine   *authz.Engine
}

// JWTPerRoute is a checked envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig:
// the filter is off on the route (Disabled), or checks the filter's
// requirement_map entry RequirementName instead of its rules.
type JWTPerRoute struct {
	Disabled        bool
	RequirementName string
}

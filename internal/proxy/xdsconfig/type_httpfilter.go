package xdsconfig

import "time"

// HTTPFilter is one entry of an HCM's http_filters, in chain order. The
// router is always the last entry.
type HTTPFilter struct {
	// Name is the filter's configured name (envoy.filters.http.cors, ...).
	Name string
	// TypeURL is the type URL of the filter's typed_config.
	TypeURL string
	// Config is the checked typed_config: *Fault for the fault filter,
	// *CORSFilter for cors, *Router for the router. Filters added later
	// (envoy.filters.http.rbac, envoy.filters.http.jwt_authn) put their own
	// checked type here; see httpFilterParsers.
	Config any
}

// Router is the checked router filter config (nothing is configurable yet).
type Router struct{}

// DynamicForwardProxyFilter is the checked
// envoy.filters.http.dynamic_forward_proxy: it has no runtime part, since
// dynamic forward proxy clusters resolve the authority when they connect.
type DynamicForwardProxyFilter struct{}

// CORSFilter is the checked envoy.extensions.filters.http.cors.v3.Cors: the
// filter carries no settings; policies come from the route, virtual host or
// route configuration.
type CORSFilter struct{}

// CORSPolicy is a checked envoy.extensions.filters.http.cors.v3.CorsPolicy
// (or the deprecated route.v3.CorsPolicy with the same meaning).
type CORSPolicy struct {
	// AllowOrigins match the request's Origin header; no entry matches nothing.
	AllowOrigins []*StringMatcher
	// AllowMethods is the access-control-allow-methods value of preflights.
	AllowMethods string
	// AllowHeaders is the access-control-allow-headers value of preflights.
	AllowHeaders string
	// ExposeHeaders is the access-control-expose-headers value of responses.
	ExposeHeaders string
	// MaxAge is the access-control-max-age value of preflights.
	MaxAge string
	// AllowCredentials sends access-control-allow-credentials: true.
	AllowCredentials bool
	// EnabledPerMillion is filter_enabled's default value (1_000_000 when unset).
	EnabledPerMillion uint32
	// ShadowPerMillion is shadow_enabled's default value; shadow mode
	// evaluates the origin but enforces nothing.
	ShadowPerMillion uint32
	// ForwardNotMatchingPreflights forwards preflights whose origin does not
	// match upstream (Envoy's default true); false answers them with 200 and
	// no CORS headers.
	ForwardNotMatchingPreflights bool
}

// HashKind says what a hash policy hashes.
type HashKind int

// Hash policy kinds, as RouteAction.HashPolicy's policy_specifier.
const (
	HashHeader HashKind = iota
	HashCookie
	HashSourceIP
	HashQueryParameter
)

// HashPolicy is one checked RouteAction.HashPolicy.
type HashPolicy struct {
	// Kind is what is hashed.
	Kind HashKind
	// Name is the header (lower case), cookie or query parameter name.
	Name string
	// CookieTTL, for cookies, makes the proxy generate the cookie when the
	// request lacks it (Envoy: only when a TTL is set).
	CookieTTL time.Duration
	// HasCookieTTL tells a zero TTL (session cookie) from none.
	HasCookieTTL bool
	// CookiePath is the generated cookie's path.
	CookiePath string
	// Terminal stops evaluating further policies once this one produced a key.
	Terminal bool
}

package xdsconfig

import (
	"regexp"
	"time"

	"github.com/bowline-mesh/bowline/internal/proxy/authz"
)

// RouteConfig is a checked envoy.config.route.v3.RouteConfiguration.
type RouteConfig struct {
	// Name is the xDS resource name.
	Name string
	// VirtualHosts are matched by domain, most specific first (Envoy's order:
	// exact, suffix wildcard, prefix wildcard, "*").
	VirtualHosts []VirtualHost
	// Headers are the route-configuration level header edits.
	Headers HeaderEdits
}

// VirtualHost is one virtual host.
type VirtualHost struct {
	// Name is the virtual host's name.
	Name string
	// Domains are the domain patterns, lower case.
	Domains []string
	// Routes are matched in order; the first match wins.
	Routes []Route
	// Headers are the virtual-host level header edits.
	Headers HeaderEdits
	// Retry is the virtual host's default retry policy, or nil.
	Retry *RetryPolicy
	// CORS is the virtual host's CORS policy (typed_per_filter_config
	// envoy.filters.http.cors or the deprecated cors field), or nil.
	CORS *CORSPolicy
	// PerFilter holds checked typed_per_filter_config of filters other than
	// cors and fault, by filter name.
	PerFilter map[string]any
	// RequireTLS is require_tls ALL: a request that did not arrive over TLS
	// is answered 301 to the same URL with scheme https.
	RequireTLS bool
	// RateLimits are the virtual host's rate_limits.
	RateLimits []RateLimitPolicy
}

// PathMatchKind says how a route matches the path.
type PathMatchKind int

// Path match kinds.
const (
	PathPrefix PathMatchKind = iota
	PathExact
	PathRegex
	PathSeparatedPrefix
)

// RouteMatch is a checked route match.
type RouteMatch struct {
	// Kind is the path comparison.
	Kind PathMatchKind
	// Path is the literal prefix or path (lower case when not CaseSensitive).
	Path string
	// Regex is the compiled whole-path regex for PathRegex.
	Regex *regexp.Regexp
	// CaseSensitive compares the path with case (Envoy's default true).
	CaseSensitive bool
	// Headers must all match.
	Headers []HeaderMatcher
	// Query must all match.
	Query []QueryMatcher
	// GRPC matches only gRPC requests.
	GRPC bool
	// Metadata must all match the dynamic metadata earlier filters set
	// (jwt_authn's payload: routing on verified claims).
	Metadata []authz.MetadataMatcher
}

// HeaderMatcher matches one request header.
type HeaderMatcher struct {
	// Name is the lower-case header name.
	Name string
	// Present, when not nil, matches on presence only.
	Present *bool
	// String matches the value; nil with Present.
	String *StringMatcher
	// Invert negates the result.
	Invert bool
	// MissingAsEmpty matches a missing header as the empty string.
	MissingAsEmpty bool
}

// QueryMatcher matches one query parameter.
type QueryMatcher struct {
	// Name is the parameter name.
	Name string
	// String matches the value; nil means present.
	String *StringMatcher
}

// Route is one route: exactly one of Action, Redirect and Direct is set.
type Route struct {
	// Name is the route's name.
	Name string
	// Match selects requests.
	Match RouteMatch
	// Action forwards to clusters.
	Action *RouteAction
	// Redirect answers with a redirect.
	Redirect *Redirect
	// Direct answers with a fixed response.
	Direct *DirectResponse
	// Headers are the route-level header edits.
	Headers HeaderEdits
	// Fault is the per-route fault config (typed_per_filter_config), or nil.
	Fault *Fault
	// CORS is the route's CORS policy, or the virtual host's when the route
	// has none, or nil.
	CORS *CORSPolicy
	// PerFilter holds checked typed_per_filter_config of filters other than
	// cors and fault, by filter name (the virtual host's entries are merged in).
	PerFilter map[string]any
	// Operation is decorator.operation: the name of the request's span.
	Operation string
}

// WeightedCluster is one destination cluster with its weight.
type WeightedCluster struct {
	// Name is the cluster name.
	Name string
	// Weight is the relative weight.
	Weight uint32
	// Headers are the per-cluster header edits.
	Headers HeaderEdits
}

// RouteAction forwards a request.
type RouteAction struct {
	// Clusters are the weighted destinations.
	Clusters []WeightedCluster
	// TotalWeight is the sum of the weights.
	TotalWeight uint32
	// Timeout is the overall timeout; 0 disables it.
	Timeout time.Duration
	// Retry is the retry policy, or nil for none.
	Retry *RetryPolicy
	// PrefixRewrite replaces the matched prefix, when set.
	PrefixRewrite string
	// HasPrefixRewrite tells an empty rewrite from none.
	HasPrefixRewrite bool
	// RegexRewrite rewrites the path, when not nil.
	RegexRewrite *regexp.Regexp
	// RegexSubstitution is the replacement for RegexRewrite (Go syntax, \1 turned into ${1}).
	RegexSubstitution string
	// HostRewrite replaces the authority, when not empty.
	HostRewrite string
	// Mirrors are the shadow destinations.
	Mirrors []Mirror
	// Hash are the hash policies for ring hash and maglev, in order.
	Hash []HashPolicy
	// ClusterNotFoundStatus answers a pick of a cluster the snapshot lacks
	// (cluster_not_found_response_code): 503 by default, 404 or 500.
	ClusterNotFoundStatus int
	// RateLimits are the route's rate_limits (descriptors for the rate
	// limit filters); IncludeVHRateLimits adds the virtual host's to them,
	// which otherwise apply only to routes without their own.
	RateLimits          []RateLimitPolicy
	IncludeVHRateLimits bool
}

// Mirror is a request mirror policy.
type Mirror struct {
	// Cluster receives a copy of the request.
	Cluster string
	// PerMillion is the sampled fraction in parts per million.
	PerMillion uint32
}

// Retry conditions, as Envoy's x-envoy-retry-on values.
const (
	Retry5xx = 1 << iota
	RetryGatewayError
	RetryConnectFailure
	RetryRefusedStream
	RetryRetriable4xx
	RetryReset
	RetryRetriableStatusCodes
	RetryCancelled
	RetryDeadlineExceeded
	RetryInternal
	RetryResourceExhausted
	RetryUnavailable
)

// RetryPolicy is a checked retry policy.
type RetryPolicy struct {
	// On is the set of Retry* conditions.
	On int
	// NumRetries is the number of retries after the first attempt.
	NumRetries uint32
	// PerTryTimeout bounds each attempt; 0 means the overall timeout.
	PerTryTimeout time.Duration
	// BaseInterval is the backoff base (default 25ms). Attempt n waits a
	// uniformly random time in (0, min(BaseInterval*2^(n-1), MaxInterval)]
	// (full jitter), as Envoy does.
	BaseInterval time.Duration
	// MaxInterval is the backoff cap (default 10x base, 250ms).
	MaxInterval time.Duration
	// StatusCodes are retried with RetryRetriableStatusCodes.
	StatusCodes []uint32
	// OtherHosts retries on a host not tried before when possible.
	OtherHosts bool
}

// Redirect is a checked redirect action.
type Redirect struct {
	// Scheme replaces the scheme when not empty.
	Scheme string
	// Host replaces the host when not empty.
	Host string
	// Port replaces the port when not 0.
	Port uint32
	// Path replaces the whole path when not empty.
	Path string
	// PrefixRewrite replaces the matched prefix when HasPrefixRewrite.
	PrefixRewrite string
	// HasPrefixRewrite tells an empty prefix rewrite from none.
	HasPrefixRewrite bool
	// Code is the HTTP status (301, 302, 303, 307, 308).
	Code int
	// StripQuery drops the query string.
	StripQuery bool
}

// DirectResponse is a fixed response.
type DirectResponse struct {
	// Status is the HTTP status.
	Status int
	// Body is the response body.
	Body string
}

// Fault is a checked HTTPFault.
type Fault struct {
	// Delay is the injected delay; 0 for none.
	Delay time.Duration
	// DelayPerMillion is the fraction of requests delayed.
	DelayPerMillion uint32
	// AbortStatus is the injected HTTP status; 0 for none.
	AbortStatus int
	// AbortGRPCStatus is the injected gRPC status when HasGRPCAbort.
	AbortGRPCStatus uint32
	// HasGRPCAbort says AbortGRPCStatus is set.
	HasGRPCAbort bool
	// AbortPerMillion is the fraction of requests aborted.
	AbortPerMillion uint32
}

func totalWeight(cs []WeightedCluster) uint32 {
	var t uint32
	for _, c := range cs {
		t += c.Weight
	}
	return t
}

package xdsconfig

import "time"

// TokenBucket is a checked envoy.type.v3.TokenBucket.
type TokenBucket struct {
	// MaxTokens is the bucket's size, and its content at start.
	MaxTokens uint32
	// TokensPerFill are added every FillInterval, up to MaxTokens.
	TokensPerFill uint32
	// FillInterval is the refill period (> 0).
	FillInterval time.Duration
}

// DescriptorEntry is one key/value of a rate limit descriptor.
type DescriptorEntry struct{ Key, Value string }

// LocalDescriptor is a local rate limit descriptor with its own bucket.
type LocalDescriptor struct {
	// Entries must equal a request descriptor's entries, in order.
	Entries []DescriptorEntry
	Bucket  TokenBucket
}

// LocalRateLimit is a checked
// envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit, the
// filter's config or a route's typed_per_filter_config (which replaces it
// for that route, with buckets of its own).
type LocalRateLimit struct {
	StatPrefix string
	// Bucket is token_bucket; nil: no default bucket (Envoy lets a request
	// through that no descriptor limits).
	Bucket *TokenBucket
	// EnabledPerMillion and EnforcedPerMillion are filter_enabled and
	// filter_enforced (their default_value; Bowline has no runtime). Unset
	// is 0: a filter that is not enabled does nothing, one enabled but not
	// enforced only counts.
	EnabledPerMillion, EnforcedPerMillion uint32
	// Status is the rate-limited answer's status (429 unless set).
	Status int
	// ResponseHeaders are added to rate-limited answers.
	ResponseHeaders []HeaderValue
	// RequestHeadersNotEnforced are added to requests that would have been
	// limited but were not enforced.
	RequestHeadersNotEnforced []HeaderValue
	// Descriptors have buckets of their own, used for requests whose
	// descriptors (route rate_limits of Stage) equal their entries.
	Descriptors []LocalDescriptor
	// Stage selects the route rate_limits that produce descriptors.
	Stage uint32
	// RateLimits are the filter's own rate_limits, used instead of the
	// route's when set.
	RateLimits []RateLimitPolicy
	// XRateLimitHeaders sends x-ratelimit-limit, -remaining and -reset
	// (enable_x_ratelimit_headers DRAFT_VERSION_03).
	XRateLimitHeaders bool
	// AlwaysConsumeDefault takes a token from the default bucket also when a
	// descriptor matched (Envoy's default).
	AlwaysConsumeDefault bool
	// Key identifies the config's content: limiters of equal keys share
	// their buckets across config updates.
	Key string
}

// RateLimitFilter is a checked envoy.extensions.filters.http.ratelimit.v3.RateLimit:
// requests are checked with an envoy.service.ratelimit.v3 service.
type RateLimitFilter struct {
	// Domain is sent with every request to the service.
	Domain string
	// Stage selects the route rate_limits that produce descriptors.
	Stage uint32
	// Cluster is the service's cluster (grpc_service.envoy_grpc.cluster_name);
	// Authority its :authority (the cluster name unless set).
	Cluster, Authority string
	// Timeout bounds a call (Envoy's default 20ms).
	Timeout time.Duration
	// FailureModeDeny answers StatusOnError when the service fails;
	// otherwise the request goes on.
	FailureModeDeny bool
	// Status is the rate-limited answer's status (429 unless set).
	Status int
	// StatusOnError is the answer when the service fails and
	// FailureModeDeny is set (500 unless set).
	StatusOnError int
	// XRateLimitHeaders sends x-ratelimit-* from the service's answer.
	XRateLimitHeaders bool
	// NoRateLimitedHeader leaves out x-envoy-ratelimited on limited answers.
	NoRateLimitedHeader bool
}

// RateLimitActionKind is the kind of a route rate limit action.
type RateLimitActionKind int

// Rate limit actions.
const (
	ActionSourceCluster RateLimitActionKind = iota
	ActionDestinationCluster
	ActionRequestHeaders
	ActionRemoteAddress
	ActionGenericKey
	ActionHeaderValueMatch
)

// RateLimitAction is one action of a route's rate_limits entry; it
// contributes one descriptor entry, or voids the descriptor.
type RateLimitAction struct {
	Kind RateLimitActionKind
	// Key is the entry's key (descriptor_key, else Envoy's default for the kind).
	Key string
	// Header is request_headers' header_name (lower case).
	Header string
	// SkipIfAbsent: a missing header leaves the entry out instead of
	// voiding the descriptor.
	SkipIfAbsent bool
	// Value is generic_key's and header_value_match's descriptor_value.
	Value string
	// Headers and ExpectMatch are header_value_match's.
	Headers     []HeaderMatcher
	ExpectMatch bool
}

// RateLimitPolicy is one entry of a route's or virtual host's rate_limits:
// its actions make one descriptor.
type RateLimitPolicy struct {
	Stage   uint32
	Actions []RateLimitAction
}

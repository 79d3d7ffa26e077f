// Package ratelimit is the proxy's rate limiting: Envoy's
// envoy.filters.http.local_ratelimit (token buckets per config, with
// descriptor buckets) and envoy.filters.http.ratelimit (a call to an
// envoy.service.ratelimit.v3 RateLimitService), and the descriptors both
// compute from a route's rate_limits actions.
//
// It owns the limiter state and the service call; the proxy's HTTP filter
// (internal/proxy, filters_ratelimit.go) turns decisions into answers (429
// with response flag RL). It imports the checked config types
// (proxy/xdsconfig) and must not import the proxy package.
package ratelimit

package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/bowline-mesh/bowline/internal/proxy/ratelimit"
	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// This file wires the rate limit filters (internal/proxy/ratelimit) into
// the HCM chain: envoy.filters.http.local_ratelimit and
// envoy.filters.http.ratelimit answer 429 with response flag RL (RLSE when
// the rate limit service failed and failure_mode_deny is set).

var (
	_ httpFilter        = localRateLimitFilter{}
	_ httpFilter        = globalRateLimitFilter{}
	_ ratelimit.Request = rateLimitRequest{}
)

// rateLimits is the proxy's rate limit state: local limiters by config
// content (kept across config updates) and the gRPC connections to rate
// limit services, by cluster and authority.
type rateLimits struct {
	p        *Proxy
	limiters *ratelimit.Limiters

	mu    sync.Mutex
	conns map[[2]string]*grpc.ClientConn
}

func newRateLimits(p *Proxy) *rateLimits {
	return &rateLimits{p: p, limiters: ratelimit.NewLimiters(nil), conns: map[[2]string]*grpc.ClientConn{}}
}

// conn returns the connection to the rate limit service of cluster, made
// when a filter naming it is built (not per request). Each dial picks a
// host of the cluster in the config in force and speaks the cluster's
// transport socket: plaintext, TLS or mTLS (ISTIO_MUTUAL to a meshed
// service), as Envoy's envoy_grpc does. The reconnect backoff stays short
// (at most a second), so a service that comes back is used again soon.
func (rl *rateLimits) conn(cluster, authority string) (*grpc.ClientConn, error) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	k := [2]string{cluster, authority}
	if c := rl.conns[k]; c != nil {
		return c, nil
	}
	bo := grpcbackoff.DefaultConfig
	bo.BaseDelay, bo.MaxDelay = 50*time.Millisecond, time.Second
	c, err := grpc.NewClient("passthrough:///"+authority,
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return rl.p.dialGRPC(ctx, cluster) }),
		// The dialer does the cluster's TLS; gRPC speaks HTTP/2 on that connection.
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority(authority),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: time.Second}))
	if err != nil {
		return nil, fmt.Errorf("rate limit service %s: %w", cluster, err)
	}
	rl.conns[k] = c
	return c, nil
}

// dialGRPC connects to a host of the cluster name of the config in force
// for a gRPC client, with the cluster's transport socket. A TLS context
// without alpn_protocols offers h2, as Envoy's HTTP/2 connections do (gRPC
// servers refuse TLS without ALPN).
func (p *Proxy) dialGRPC(ctx context.Context, name string) (net.Conn, error) {
	if p == nil {
		return nil, errors.New("no config")
	}
	s := p.snap.Load()
	if s == nil {
		return nil, errors.New("no config")
	}
	c := s.clusters[name]
	if c == nil {
		return nil, fmt.Errorf("cluster %q not found", name)
	}
	h := c.pick(nil, "", false)
	if h == nil {
		return nil, fmt.Errorf("cluster %q has no healthy host", name)
	}
	pl := c.poolFor(h)
	if pl.tls != nil && len(pl.tls.NextProtos) == 0 {
		tc := pl.tls.Clone()
		tc.NextProtos = []string{"h2"}
		pl = &pool{tls: tc}
	}
	return c.dialConn(ctx, pl, "tcp", h.addr)
}

// close closes the service connections (when the proxy stops).
func (rl *rateLimits) close() {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	for k, c := range rl.conns {
		_ = c.Close()
		delete(rl.conns, k)
	}
}

// localLimiter is the limiter of cfg installed with the snapshot, or nil.
func (s *snapshot) localLimiter(cfg *xdsconfig.LocalRateLimit) *ratelimit.Local {
	if s == nil {
		return nil
	}
	return s.localRL[cfg]
}

// rateLimitRequest is what descriptor actions read of an exchange.
type rateLimitRequest struct{ x *exchange }

func (q rateLimitRequest) Header(name string) (string, bool) {
	switch name {
	case ":path":
		return q.x.r.URL.RequestURI(), true
	case ":authority", "host":
		return q.x.r.Host, true
	case ":method":
		return q.x.r.Method, true
	}
	vs := q.x.r.Header.Values(name)
	if len(vs) == 0 {
		return "", false
	}
	return vs[0], true
}

func (q rateLimitRequest) MatchHeaders(hms []xdsconfig.HeaderMatcher) bool {
	return matchHeaders(hms, q.x.r)
}

func (q rateLimitRequest) RemoteAddress() string {
	if a := q.x.remoteAddr(); a.IsValid() {
		return a.String()
	}
	return ""
}

func (q rateLimitRequest) SourceCluster() string { return q.x.p.nodeCluster }

func (q rateLimitRequest) DestinationCluster() string {
	if q.x.route != nil && q.x.route.Action != nil && len(q.x.route.Action.Clusters) > 0 {
		return q.x.route.Action.Clusters[0].Name
	}
	return ""
}

// routeRateLimits are the rate_limits that apply to the request's route:
// the route's, plus the virtual host's when the route has none or includes
// them (Envoy's include_vh_rate_limits).
func (x *exchange) routeRateLimits() []xdsconfig.RateLimitPolicy {
	var out []xdsconfig.RateLimitPolicy
	if x.route != nil && x.route.Action != nil {
		out = x.route.Action.RateLimits
	}
	if x.vh != nil && len(x.vh.RateLimits) > 0 && (len(out) == 0 || (x.route != nil && x.route.Action != nil && x.route.Action.IncludeVHRateLimits)) {
		out = append(append([]xdsconfig.RateLimitPolicy(nil), out...), x.vh.RateLimits...)
	}
	return out
}

// setXRateLimit writes the x-ratelimit-* headers (draft 03) to the answer.
func setXRateLimit(h http.Header, limit, remaining uint32, resetSeconds float64) {
	h.Set("x-ratelimit-limit", strconv.FormatUint(uint64(limit), 10))
	h.Set("x-ratelimit-remaining", strconv.FormatUint(uint64(remaining), 10))
	h.Set("x-ratelimit-reset", strconv.FormatInt(int64(resetSeconds+0.999), 10))
}

// localRateLimitFilter is envoy.filters.http.local_ratelimit; a route's
// typed_per_filter_config under the filter's name replaces cfg there.
type localRateLimitFilter struct {
	name string
	cfg  *xdsconfig.LocalRateLimit
	rl   *rateLimits
}

func (f localRateLimitFilter) decode(x *exchange) bool {
	cfg := f.cfg
	if x.route != nil {
		if c, ok := x.route.PerFilter[f.name].(*xdsconfig.LocalRateLimit); ok {
			cfg = c
		}
	}
	if !sampled(cfg.EnabledPerMillion) {
		return false
	}
	policies := cfg.RateLimits
	if len(policies) == 0 {
		policies = x.routeRateLimits()
	}
	descs := ratelimit.Descriptors(policies, cfg.Stage, rateLimitRequest{x})
	l := x.snap.localLimiter(cfg)
	if l == nil {
		l = f.rl.limiters.For(cfg) // a chain built without a snapshot (tests)
	}
	dec := l.Allow(f.rl.limiters.Now(), descs)
	if cfg.XRateLimitHeaders && dec.Bucketed {
		setXRateLimit(x.w.Header(), dec.Limit, dec.Remaining, dec.Reset.Seconds())
	}
	if !dec.Limited {
		return false
	}
	if !sampled(cfg.EnforcedPerMillion) {
		applyHeaderValues(x.r.Header, cfg.RequestHeadersNotEnforced)
		return false
	}
	x.rec.flags |= flagRL
	x.rec.details = "local_rate_limited"
	applyHeaderValues(x.w.Header(), cfg.ResponseHeaders)
	x.localReply(cfg.Status, "local_rate_limited")
	return true
}

func (localRateLimitFilter) encode(*exchange, http.Header) {}

// globalRateLimitFilter is envoy.filters.http.ratelimit: the request's
// descriptors go to the rate limit service, whose OVER_LIMIT answers 429.
type globalRateLimitFilter struct {
	cfg *xdsconfig.RateLimitFilter
	// conn is the service's connection (or connErr why there is none),
	// looked up once when the filter is built.
	conn    *grpc.ClientConn
	connErr error
}

func newGlobalRateLimitFilter(cfg *xdsconfig.RateLimitFilter, rl *rateLimits) globalRateLimitFilter {
	f := globalRateLimitFilter{cfg: cfg}
	f.conn, f.connErr = rl.conn(cfg.Cluster, cfg.Authority)
	return f
}

func (f globalRateLimitFilter) decode(x *exchange) bool {
	descs := ratelimit.Descriptors(x.routeRateLimits(), f.cfg.Stage, rateLimitRequest{x})
	if len(descs) == 0 {
		return false // Envoy calls the service only with descriptors
	}
	v, err := f.check(x, descs)
	if err != nil {
		x.p.log.Debug("rate limit service failed", slog.String("cluster", f.cfg.Cluster), slog.String("error", err.Error()))
		if !f.cfg.FailureModeDeny {
			return false
		}
		x.rec.flags |= flagRLSE
		x.rec.details = "rate_limiter_error"
		x.localReply(f.cfg.StatusOnError, "")
		return true
	}
	h := x.w.Header()
	applyHeaderValues(h, v.ResponseHeaders)
	if f.cfg.XRateLimitHeaders && v.Bucketed {
		setXRateLimit(h, v.Limit, v.Remaining, v.Reset.Seconds())
	}
	if !v.OverLimit {
		applyHeaderValues(x.r.Header, v.RequestHeaders)
		return false
	}
	x.rec.flags |= flagRL
	x.rec.details = "request_rate_limited"
	if !f.cfg.NoRateLimitedHeader {
		h.Set("x-envoy-ratelimited", "true")
	}
	x.localReply(f.cfg.Status, "")
	return true
}

func (f globalRateLimitFilter) check(x *exchange, descs []ratelimit.Descriptor) (ratelimit.Verdict, error) {
	if f.connErr != nil {
		return ratelimit.Verdict{}, f.connErr
	}
	ctx, cancel := context.WithTimeout(x.r.Context(), f.cfg.Timeout)
	defer cancel()
	return ratelimit.Check(ctx, f.conn, f.cfg.Domain, descs)
}

func (globalRateLimitFilter) encode(*exchange, http.Header) {}

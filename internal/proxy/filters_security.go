package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/bowline-mesh/bowline/internal/proxy/authz"
	"github.com/bowline-mesh/bowline/internal/proxy/extauthz"
	"github.com/bowline-mesh/bowline/internal/proxy/jwtauthn"
	"github.com/bowline-mesh/bowline/internal/proxy/ratelimit"
	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// This file wires the security engines (internal/proxy/authz and
// internal/proxy/jwtauthn) into the data path, following their doc.go
// contracts: path normalization once per request, then jwt_authn and the RBAC
// filters in the HCM's order before the router, and network RBAC before a
// tcp_proxy dials its upstream.

var (
	_ httpFilter       = rbacFilter{}
	_ httpFilter       = (*jwtFilter)(nil)
	_ jwtauthn.Fetcher = (*jwksFetcher)(nil)
)

// securityState is the per-request state of the security filters, kept in
// the exchange.
type securityState struct {
	// metadata is the dynamic metadata of earlier filters (jwt_authn's payload).
	metadata map[string]map[string]any
	// req is the authz request, built once by the first RBAC filter.
	req   authz.Request
	built bool
	// responseHeaders are what allowed ext_authz checks add to the response.
	responseHeaders []extauthz.Header
}

// normalizePath applies the HCM's path options to the request once, before
// routing: the normalized path replaces r.URL's path, so routing, RBAC and the
// upstream request all see it. It reports false when it answered the request
// itself (400 for a rejected escaped slash, 307 for UNESCAPE_AND_REDIRECT).
func (x *exchange) normalizePath(o authz.PathOptions) bool {
	if o == (authz.PathOptions{}) || x.r.Method == http.MethodConnect {
		return true
	}
	raw := x.r.URL.RequestURI()
	norm, redirect, err := authz.NormalizePath(raw, o)
	switch {
	case errors.Is(err, authz.ErrEscapedSlash):
		x.rec.details = "path_normalization_failed"
		x.localReply(http.StatusBadRequest, "Bad Request")
		return false
	case err != nil:
		x.rec.details = "path_normalization_failed"
		x.localReply(http.StatusBadRequest, "Bad Request")
		return false
	case redirect:
		x.w.Header().Set("location", norm)
		x.localReply(http.StatusTemporaryRedirect, "")
		return false
	}
	if norm == raw {
		return true
	}
	u, err := url.ParseRequestURI(norm)
	if err != nil {
		x.rec.details = "path_normalization_failed"
		x.localReply(http.StatusBadRequest, "Bad Request")
		return false
	}
	x.r.URL.Path, x.r.URL.RawPath, x.r.URL.RawQuery = u.Path, u.RawPath, u.RawQuery
	return true
}

// authzRequest returns the attributes RBAC matches for this request, built
// on first use (after jwt_authn ran).
func (x *exchange) authzRequest() *authz.Request {
	s := &x.sec
	if s.built {
		s.req.Metadata = s.metadata // filters between two RBAC filters may have added some
		return &s.req
	}
	s.built = true
	r := x.r
	s.req = authz.Request{Method: r.Method, Host: r.Host, Path: r.URL.RequestURI(), Scheme: "http",
		Headers: r.Header, Metadata: s.metadata}
	if r.TLS != nil {
		s.req.Scheme = "https"
		s.req.SNI = r.TLS.ServerName
	}
	if x.info != nil {
		s.req.Source, s.req.Destination = x.info.src, x.info.dst
		s.req.Remote = x.remoteAddr()
	}
	s.req.Principal, s.req.Authenticated = peerPrincipal(r.TLS, x.info)
	return &s.req
}

// remoteAddr is Envoy's downstream remote address (remote.ip): without
// use_remote_address the trusted client is taken from x-forwarded-for, the
// address xff_num_trusted_hops from the right; otherwise the peer.
func (x *exchange) remoteAddr() netip.Addr {
	h := x.hcm
	if h != nil && h.UseRemoteAddress {
		return netip.Addr{}
	}
	xff := x.r.Header.Values("x-forwarded-for")
	if len(xff) == 0 {
		return netip.Addr{}
	}
	var all []string
	for _, v := range xff {
		for _, a := range strings.Split(v, ",") {
			all = append(all, strings.TrimSpace(a))
		}
	}
	hops := 0
	if h != nil {
		hops = int(h.XFFNumTrustedHops)
	}
	i := len(all) - 1 - hops
	if i < 0 {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(all[i])
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// peerPrincipal is the verified peer identity for principals/namespaces rules
// and source.principal: the URI SAN of the peer certificate, else its first
// DNS SAN, else its subject (Envoy's order).
//
// mTLS hook: the mTLS data path exposes the verified peer certificate either
// as the request's TLS state or on connInfo (peerCert). A plaintext request
// is never authenticated, so principals rules never match it.
func peerPrincipal(cs *tls.ConnectionState, info *connInfo) (string, bool) {
	var cert *x509.Certificate
	if cs != nil && len(cs.PeerCertificates) > 0 {
		cert = cs.PeerCertificates[0]
	} else if info != nil && info.peerCert != nil {
		cert = info.peerCert
	}
	if cert == nil {
		return "", false
	}
	return certPrincipal(cert), true
}

func certPrincipal(c *x509.Certificate) string {
	if len(c.URIs) > 0 {
		return c.URIs[0].String()
	}
	if len(c.DNSNames) > 0 {
		return c.DNSNames[0]
	}
	return c.Subject.String()
}

// rbacFilter is envoy.filters.http.rbac: one compiled engine. A route's
// typed_per_filter_config under the filter's name (RBACPerRoute) turns it
// off there or puts its own engine in its place.
type rbacFilter struct {
	name string
	e    *authz.Engine
	sec  *securityMetrics
}

func (f rbacFilter) decode(x *exchange) bool {
	e := f.e
	if x.route != nil {
		if pr, ok := x.route.PerFilter[f.name].(*xdsconfig.RBACPerRoute); ok {
			if pr.Disabled {
				return false
			}
			e = pr.Engine
		}
	}
	d := e.Evaluate(x.authzRequest())
	prefix := ""
	if x.hcm != nil {
		prefix = x.hcm.StatPrefix
	}
	if d.HasShadow {
		outcome := "shadow_denied"
		if d.ShadowAllowed {
			outcome = "shadow_allowed"
		}
		f.sec.count(prefix, e.ShadowStatPrefix, outcome)
		x.setShadowMetadata(e.ShadowStatPrefix, d)
		x.p.log.Debug("rbac shadow decision", slog.String("policy", d.ShadowPolicy), slog.Bool("allowed", d.ShadowAllowed),
			slog.String("path", x.r.URL.RequestURI()), slog.String("request_id", x.rec.requestID))
	}
	if d.Logged {
		// AUDIT: Envoy's access_log_hint; the request is logged as audited.
		x.rec.audit = true
		x.p.log.Info("request audited", slog.String("policy", d.Policy), slog.String("method", x.r.Method),
			slog.String("path", x.r.URL.RequestURI()), slog.String("request_id", x.rec.requestID))
	}
	if !d.Allowed {
		f.sec.count(prefix, e.RulesStatPrefix, "denied")
		x.rec.details = d.ResponseDetails()
		x.localReply(authz.DeniedStatus, authz.DeniedBody)
		return true
	}
	f.sec.count(prefix, e.RulesStatPrefix, "allowed")
	return false
}

func (rbacFilter) encode(*exchange, http.Header) {}

// rbacMetadataNamespace is the dynamic metadata namespace of the RBAC filter.
const rbacMetadataNamespace = "envoy.filters.http.rbac"

// setShadowMetadata records a shadow evaluation as Envoy's RBAC filter does,
// under its dynamic metadata: PREFIXshadow_engine_result (allowed or denied)
// and, when a policy matched, PREFIXshadow_effective_policy_id. Istio's
// CUSTOM action relies on it: ext_authz runs only when the policy id names
// its provider (filter_enabled_metadata).
func (x *exchange) setShadowMetadata(prefix string, d authz.Decision) {
	if x.sec.metadata == nil {
		x.sec.metadata = map[string]map[string]any{}
	}
	ns := x.sec.metadata[rbacMetadataNamespace]
	if ns == nil {
		ns = map[string]any{}
		x.sec.metadata[rbacMetadataNamespace] = ns
	}
	result := "denied"
	if d.ShadowAllowed {
		result = "allowed"
	}
	ns[prefix+"shadow_engine_result"] = result
	if d.ShadowPolicy != "" {
		ns[prefix+"shadow_effective_policy_id"] = d.ShadowPolicy
	}
}

// jwtFilter is envoy.filters.http.jwt_authn. A route's
// typed_per_filter_config under the filter's name (PerRouteConfig) turns it
// off there or names the requirement_map entry to check instead of the rules.
type jwtFilter struct {
	name string
	f    *jwtauthn.Filter
	// clearRouteCache picks the route again once a token was verified, so
	// routes can match its claims (xdsconfig.JWTAuthnFilter.ClearRouteCache).
	clearRouteCache bool
}

func (f *jwtFilter) decode(x *exchange) bool {
	res := jwtauthn.Result{Status: jwtauthn.Invalid, Reason: jwtauthn.ReasonBadSignature}
	var pr *xdsconfig.JWTPerRoute
	if x.route != nil {
		pr, _ = x.route.PerFilter[f.name].(*xdsconfig.JWTPerRoute)
	}
	switch {
	case pr != nil && pr.Disabled:
		return false
	case pr != nil && f.f != nil:
		var ok bool
		if res, ok = f.f.VerifyNamed(x.r.Context(), x.r, pr.RequirementName); !ok {
			// Envoy: a route naming no requirement of the filter is refused.
			x.rec.details = "jwt_authn_access_denied{wrong_requirement_name}"
			x.localReply(http.StatusForbidden, "Wrong requirement_name is provided")
			return true
		}
	case f.f != nil:
		res = f.f.Verify(x.r.Context(), x.r)
	}
	switch res.Status {
	case jwtauthn.Invalid:
		p := x.r.URL.Path
		if p == "" {
			p = "/"
		}
		x.w.Header().Set("www-authenticate", `Bearer realm="http://`+x.r.Host+p+`", error="invalid_token"`)
		x.rec.details = "jwt_authn_access_denied{" + strings.ReplaceAll(res.Reason, " ", "_") + "}"
		x.localReply(http.StatusUnauthorized, res.Reason)
		return true
	case jwtauthn.Valid:
		res.Apply(x.r.Header)
		if x.sec.metadata == nil {
			x.sec.metadata = map[string]map[string]any{}
		}
		for k, v := range res.Metadata {
			x.sec.metadata[k] = v
		}
		if f.clearRouteCache && x.vh != nil {
			x.route = matchRoute(x.vh, x.r, x.r.URL.EscapedPath(), x.sec.metadata)
		}
	}
	return false
}

func (*jwtFilter) encode(*exchange, http.Header) {}

// filterEnv is what building security filters needs beyond their config: the
// JWKS fetcher and the previous snapshot's compiled jwt filters, reused so
// their JWKS caches survive config pushes that keep the filter.
type filterEnv struct {
	// rl is the proxy's rate limit state (filters_ratelimit.go).
	rl      *rateLimits
	fetcher jwtauthn.Fetcher
	// authzPool reaches ext_authz services (filters_extauthz.go).
	authzPool *extauthz.Pool
	sec       *securityMetrics
	prevJWT   map[*xdsconfig.JWTAuthnFilter]*jwtauthn.Filter
	curJWT    map[*xdsconfig.JWTAuthnFilter]*jwtauthn.Filter
}

// rateLimits is the proxy's rate limit state, or one of its own for a
// chain built without a proxy (tests).
func (e *filterEnv) rateLimits() *rateLimits {
	if e == nil || e.rl == nil {
		return &rateLimits{limiters: ratelimit.NewLimiters(nil), conns: map[[2]string]*grpc.ClientConn{}}
	}
	return e.rl
}

func (e *filterEnv) rbacAuthz(name string, c *xdsconfig.RBACFilter) httpFilter {
	if e == nil {
		return rbacFilter{name: name, e: c.Engine}
	}
	return rbacFilter{name: name, e: c.Engine, sec: e.sec}
}

func (e *filterEnv) jwtAuthn(name string, c *xdsconfig.JWTAuthnFilter) httpFilter {
	if e == nil {
		f, _ := jwtauthn.New(c.Config, jwtauthn.Options{})
		return &jwtFilter{name: name, f: f, clearRouteCache: c.ClearRouteCache}
	}
	if f := e.prevJWT[c]; f != nil {
		e.curJWT[c] = f
		return &jwtFilter{name: name, f: f, clearRouteCache: c.ClearRouteCache}
	}
	// The config was compiled once when it was checked (xdsconfig) and the
	// fetcher plays no part in compiling, so this does not fail; a nil filter
	// would fail every request closed (see decode).
	f, _ := jwtauthn.New(c.Config, jwtauthn.Options{Fetcher: e.fetcher})
	e.curJWT[c] = f
	return &jwtFilter{name: name, f: f, clearRouteCache: c.ClearRouteCache}
}

// jwksFetcher fetches remote JWKS through the named cluster of the snapshot
// in force: a GET of the URI sent to a host the cluster picks (TLS with the
// system roots for https URIs).
type jwksFetcher struct{ p *Proxy }

func (j *jwksFetcher) FetchJWKS(ctx context.Context, cluster, uri string, timeout time.Duration) ([]byte, error) {
	s := j.p.snap.Load()
	if s == nil {
		return nil, errors.New("no config")
	}
	c := s.clusters[cluster]
	if c == nil {
		return nil, fmt.Errorf("cluster %q not found", cluster)
	}
	h := c.pick(nil, "", false)
	if h == nil {
		return nil, fmt.Errorf("cluster %q has no healthy host", cluster)
	}
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("jwks uri: %w", err)
	}
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := &net.Dialer{}
	tr := &http.Transport{
		Proxy:             nil,
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", h.addr)
		},
		TLSClientConfig: &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12},
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, err
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch jwks: status %d", resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}

// allowConnection runs a TCP filter chain's network RBAC and ext_authz
// filters before the upstream is dialed (Envoy's ONE_TIME_ON_FIRST_BYTE,
// decided up front). A denied connection is closed by the caller and logged
// with Envoy's termination details.
func (p *Proxy) allowConnection(ctx context.Context, chain *xdsconfig.FilterChain, conn net.Conn, info *connInfo, l *xdsconfig.Listener) bool {
	if len(chain.NetworkRBAC) == 0 {
		return true
	}
	req := authz.Request{Source: info.src, Destination: info.dst}
	var cs *tls.ConnectionState
	if tc, ok := conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		st := tc.ConnectionState()
		cs = &st
		req.SNI = st.ServerName
	}
	req.Principal, req.Authenticated = peerPrincipal(cs, info)
	prefix := "tcp"
	if chain.TCP != nil {
		prefix = chain.TCP.StatPrefix
	}
	refuse := func(details string, f flags) bool {
		rec := record{start: time.Now(), protocol: "tcp", inbound: l.Inbound, listener: l.Name,
			authority: info.dst.String(), details: details, flags: f}
		p.alog.log(&rec)
		p.failures.add(&rec)
		return false
	}
	for _, nf := range chain.NetworkRBAC {
		if nf.ExtAuthz != nil {
			if !p.extAuthzConnection(ctx, nf.ExtAuthz, &req, cs, info, prefix) {
				return refuse(extauthz.DetailsDenied, flagUAEX)
			}
			continue
		}
		e := nf.RBAC
		d := e.Evaluate(&req)
		if d.HasShadow {
			outcome := "shadow_denied"
			if d.ShadowAllowed {
				outcome = "shadow_allowed"
			}
			p.secMetrics.count(prefix, e.ShadowStatPrefix, outcome)
			setNetworkShadowMetadata(&req, e.ShadowStatPrefix, d)
		}
		if d.Logged {
			p.log.Info("connection audited", slog.String("policy", d.Policy), slog.String("source", info.src.String()),
				slog.String("listener", l.Name))
		}
		if !d.Allowed {
			p.secMetrics.count(prefix, e.RulesStatPrefix, "denied")
			return refuse(d.ResponseDetails(), 0)
		}
		p.secMetrics.count(prefix, e.RulesStatPrefix, "allowed")
	}
	return true
}

// rbacNetworkMetadataNamespace is the network RBAC filter's metadata namespace.
const rbacNetworkMetadataNamespace = "envoy.filters.network.rbac"

// setNetworkShadowMetadata records a network RBAC shadow evaluation as
// connection metadata (see exchange.setShadowMetadata).
func setNetworkShadowMetadata(req *authz.Request, prefix string, d authz.Decision) {
	if req.Metadata == nil {
		req.Metadata = map[string]map[string]any{}
	}
	ns := map[string]any{prefix + "shadow_engine_result": "denied"}
	if d.ShadowAllowed {
		ns[prefix+"shadow_engine_result"] = "allowed"
	}
	if d.ShadowPolicy != "" {
		ns[prefix+"shadow_effective_policy_id"] = d.ShadowPolicy
	}
	req.Metadata[rbacNetworkMetadataNamespace] = ns
}

// extAuthzConnection runs a network ext_authz check (gRPC, the connection's
// attributes only) when its filter_enabled_metadata matches.
func (p *Proxy) extAuthzConnection(ctx context.Context, cfg *extauthz.Config, req *authz.Request, cs *tls.ConnectionState, info *connInfo, prefix string) bool {
	f := p.authzPool.Filter(cfg)
	if !f.Enabled(req.Metadata) {
		return true
	}
	creq := &extauthz.Request{Source: req.Source, Destination: req.Destination, SNI: req.SNI, DestinationPrincipal: p.ownPrincipal()}
	if req.Authenticated {
		creq.SourcePrincipal = req.Principal
		if cfg.IncludePeerCertificate {
			creq.SourceCertificate = peerCertPEM(&http.Request{TLS: cs}, info)
		}
	}
	d := f.Check(ctx, creq)
	switch {
	case !d.Allow && d.Status == extauthz.Error:
		p.secMetrics.countExtAuthz(prefix, cfg.StatPrefix, "error")
	case !d.Allow:
		p.secMetrics.countExtAuthz(prefix, cfg.StatPrefix, "denied")
	case d.FailedOpen:
		p.secMetrics.countExtAuthz(prefix, cfg.StatPrefix, "failure_mode_allowed")
	default:
		p.secMetrics.countExtAuthz(prefix, cfg.StatPrefix, "ok")
	}
	return d.Allow
}

// securityMetrics are Envoy's RBAC filter stats as Prometheus counters:
// envoy_rbac_{allowed,denied,shadow_allowed,shadow_denied}_total by the
// connection manager's (or tcp_proxy's) stat prefix and the rules' prefix.
type securityMetrics struct {
	decisions *prometheus.CounterVec
	extAuthz  *prometheus.CounterVec
}

func newSecurityMetrics(reg prometheus.Registerer) *securityMetrics {
	m := &securityMetrics{decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "envoy_rbac_decisions_total",
		Help: "RBAC filter decisions (allowed, denied, shadow_allowed, shadow_denied)."},
		[]string{"stat_prefix", "rules_stat_prefix", "decision"})}
	reg.MustRegister(m.decisions)
	m.extAuthz = newExtAuthzMetrics(reg)
	return m
}

func (m *securityMetrics) count(statPrefix, rulesPrefix, decision string) {
	if m == nil {
		return
	}
	m.decisions.WithLabelValues(statPrefix, rulesPrefix, decision).Inc()
}

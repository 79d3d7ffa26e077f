package jwtauthn

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"google.golang.org/protobuf/proto"

	"github.com/bowline-mesh/bowline/internal/proxy/match"
)

// FilterName is the dynamic metadata namespace of the payloads.
const FilterName = "envoy.filters.http.jwt_authn"

// Defaults, as Envoy's.
const (
	DefaultClockSkew     = 60 * time.Second
	DefaultCacheDuration = 10 * time.Minute
)

// Fetcher fetches a remote JWKS through the named cluster (the proxy sends
// a GET for uri through its cluster, with the timeout). Implementations must
// be safe for concurrent use.
type Fetcher interface {
	FetchJWKS(ctx context.Context, cluster, uri string, timeout time.Duration) ([]byte, error)
}

// Options are the filter's injected dependencies.
type Options struct {
	// Fetcher fetches remote JWKS; nil makes every remote provider fail closed.
	Fetcher Fetcher
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Status is the outcome of Verify.
type Status int

// Statuses.
const (
	// Missing: no token anywhere and the requirement allows that; the
	// request passes and the AuthorizationPolicy decides.
	Missing Status = iota
	// Valid: the requirement passed with at least one verified token.
	Valid
	// Invalid: answer 401 with Reason as the body.
	Invalid
)

// Result is what one request's verification produced.
type Result struct {
	Status Status
	// Reason is Envoy's failure text for Invalid (the 401 body).
	Reason string
	// Principal is "iss/sub" of the first verified token; Audiences and
	// Presenter (azp) come from it too.
	Principal, Presenter string
	Audiences            []string
	// Claims is the first verified token's payload as decoded JSON.
	Claims map[string]any
	// Metadata is the dynamic metadata to hand to RBAC:
	// {FilterName: {payload_in_metadata: normalized payload}}.
	Metadata map[string]map[string]any
	// SetHeaders are forward_payload_header and claim_to_headers outputs;
	// RemoveHeaders the token headers to strip (providers without forward).
	SetHeaders    map[string]string
	RemoveHeaders []string
}

// Apply edits request headers per the result.
func (r *Result) Apply(h http.Header) {
	for _, k := range r.RemoveHeaders {
		h.Del(k)
	}
	for k, v := range r.SetHeaders {
		h.Set(k, v)
	}
}

// Filter is one compiled jwt_authn filter, safe for concurrent use. Remote
// JWKS are fetched on demand (no goroutines) and cached per provider.
type Filter struct {
	providers map[string]*provider
	names     []string
	rule      *requirement
	// named are the requirement_map entries routes select by name
	// (PerRouteConfig.requirement_name).
	named   map[string]*requirement
	now     func() time.Time
	fetcher Fetcher
}

type location struct {
	header, prefix string // header (lower case) and value prefix
	param, cookie  string
}

type provider struct {
	name           string
	issuer         string
	audiences      []string
	forward        bool
	payloadHeader  string
	payloadKey     string
	spaceDelimited []string
	claimHeaders   [][2]string // header, claim (dotted path)
	locations      []location
	skew           time.Duration
	local          []key
	remoteURI      string
	remoteCluster  string
	remoteTimeout  time.Duration
	cacheDuration  time.Duration
	mu             sync.Mutex
	cached         []key
	cachedUntil    time.Time
}

// requirement is a compiled JwtRequirement.
type requirement struct {
	provider     string
	any, all     []*requirement
	allowMissing bool
	allowFailed  bool
}

// New compiles an envoy.filters.http.jwt_authn config; the error names the
// unsupported field (a NACK reason).
func New(cfg *jwtv3.JwtAuthentication, o Options) (*Filter, error) {
	if err := onlyFields(cfg, "", "providers", "rules", "bypass_cors_preflight", "requirement_map"); err != nil {
		return nil, err
	}
	f := &Filter{providers: map[string]*provider{}, now: o.Now, fetcher: o.Fetcher}
	if f.now == nil {
		f.now = time.Now
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.GetProviders())) {
		p, err := compileProvider(name, cfg.GetProviders()[name])
		if err != nil {
			return nil, err
		}
		f.providers[name] = p
		f.names = append(f.names, name)
	}
	switch n := len(cfg.GetRules()); {
	case n > 1:
		return nil, fmt.Errorf("field rules: %d rules unsupported (one catch-all rule)", n)
	case n == 1:
		r := cfg.GetRules()[0]
		if err := onlyFields(r, "rules[0]", "match", "requires"); err != nil {
			return nil, err
		}
		if m := r.GetMatch(); m.GetPrefix() != "/" || len(m.GetHeaders()) > 0 || len(m.GetQueryParameters()) > 0 {
			return nil, fmt.Errorf("field rules[0].match: only prefix \"/\" supported")
		}
		req, err := f.compileRequirement(r.GetRequires(), "rules[0].requires")
		if err != nil {
			return nil, err
		}
		f.rule = req
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.GetRequirementMap())) {
		req, err := f.compileRequirement(cfg.GetRequirementMap()[name], fmt.Sprintf("requirement_map[%q]", name))
		if err != nil {
			return nil, err
		}
		if f.named == nil {
			f.named = map[string]*requirement{}
		}
		f.named[name] = req
	}
	return f, nil
}

func compileProvider(name string, p *jwtv3.JwtProvider) (*provider, error) {
	path := fmt.Sprintf("providers[%q]", name)
	if err := onlyFields(p, path, "issuer", "audiences", "forward", "from_headers", "from_params", "from_cookies",
		"forward_payload_header", "payload_in_metadata", "normalize_payload_in_metadata", "clock_skew_seconds",
		"claim_to_headers", "remote_jwks", "local_jwks", "clear_route_cache"); err != nil {
		return nil, err
	}
	out := &provider{name: name, issuer: p.GetIssuer(), audiences: p.GetAudiences(), forward: p.GetForward(),
		payloadHeader: p.GetForwardPayloadHeader(), payloadKey: p.GetPayloadInMetadata(),
		spaceDelimited: p.GetNormalizePayloadInMetadata().GetSpaceDelimitedClaims(), skew: DefaultClockSkew}
	if s := p.GetClockSkewSeconds(); s > 0 {
		out.skew = time.Duration(s) * time.Second
	}
	for _, h := range p.GetFromHeaders() {
		out.locations = append(out.locations, location{header: strings.ToLower(h.GetName()), prefix: h.GetValuePrefix()})
	}
	for _, q := range p.GetFromParams() {
		out.locations = append(out.locations, location{param: q})
	}
	for _, c := range p.GetFromCookies() {
		out.locations = append(out.locations, location{cookie: c})
	}
	if len(out.locations) == 0 {
		// Envoy's defaults: Authorization: Bearer, then ?access_token=.
		out.locations = []location{{header: "authorization", prefix: "Bearer "}, {param: "access_token"}}
	}
	for _, c := range p.GetClaimToHeaders() {
		out.claimHeaders = append(out.claimHeaders, [2]string{c.GetHeaderName(), c.GetClaimName()})
	}
	switch {
	case p.GetLocalJwks() != nil:
		if err := onlyFields(p.GetLocalJwks(), path+".local_jwks", "inline_string"); err != nil {
			return nil, err
		}
		keys, err := parseJWKS([]byte(p.GetLocalJwks().GetInlineString()))
		if err != nil {
			// Envoy accepts an unusable inline JWKS (it logs it) and then
			// fails every token of the provider; the control plane sends
			// {"keys":[]} for a rule whose keys it cannot resolve.
			keys = []key{}
		}
		out.local = keys
	case p.GetRemoteJwks() != nil:
		rj := p.GetRemoteJwks()
		if err := onlyFields(rj, path+".remote_jwks", "http_uri", "cache_duration", "async_fetch", "retry_policy"); err != nil {
			return nil, err
		}
		out.remoteURI, out.remoteCluster = rj.GetHttpUri().GetUri(), rj.GetHttpUri().GetCluster()
		out.remoteTimeout = rj.GetHttpUri().GetTimeout().AsDuration()
		out.cacheDuration = DefaultCacheDuration
		if d := rj.GetCacheDuration(); d != nil {
			out.cacheDuration = d.AsDuration()
		}
		if out.remoteURI == "" || out.remoteCluster == "" {
			return nil, fmt.Errorf("field %s.remote_jwks.http_uri: uri and cluster required", path)
		}
	default:
		return nil, fmt.Errorf("field %s: local_jwks or remote_jwks required", path)
	}
	return out, nil
}

func (f *Filter) compileRequirement(r *jwtv3.JwtRequirement, path string) (*requirement, error) {
	switch t := r.GetRequiresType().(type) {
	case *jwtv3.JwtRequirement_ProviderName:
		if f.providers[t.ProviderName] == nil {
			return nil, fmt.Errorf("field %s.provider_name: unknown provider %q", path, t.ProviderName)
		}
		return &requirement{provider: t.ProviderName}, nil
	case *jwtv3.JwtRequirement_RequiresAny:
		out := &requirement{}
		for i, c := range t.RequiresAny.GetRequirements() {
			cr, err := f.compileRequirement(c, fmt.Sprintf("%s.requires_any.requirements[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out.any = append(out.any, cr)
		}
		return out, nil
	case *jwtv3.JwtRequirement_RequiresAll:
		out := &requirement{}
		for i, c := range t.RequiresAll.GetRequirements() {
			cr, err := f.compileRequirement(c, fmt.Sprintf("%s.requires_all.requirements[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out.all = append(out.all, cr)
		}
		return out, nil
	case *jwtv3.JwtRequirement_AllowMissing:
		return &requirement{allowMissing: true}, nil
	case *jwtv3.JwtRequirement_AllowMissingOrFailed:
		return &requirement{allowMissing: true, allowFailed: true}, nil
	case nil:
		return nil, fmt.Errorf("field %s: empty requirement", path)
	default:
		return nil, fmt.Errorf("field %s: %T unsupported", path, t)
	}
}

// onlyFields is match.OnlyFields: the one proto field check of the data plane.
func onlyFields(m proto.Message, path string, allowed ...string) error {
	return match.OnlyFields(m, path, allowed...)
}

// outcome of a requirement: 'o'k, 'm'issing, 'f'ailed.
type outcome struct {
	kind   byte
	reason string
}

// verification state of one request.
type state struct {
	ctx      context.Context
	r        *http.Request
	now      time.Time
	verified map[string]outcome // per provider, memoized
	first    *verifiedToken
	all      []*verifiedToken
}

type verifiedToken struct {
	p   *provider
	t   *token
	loc location
}

// Verify runs the filter's requirement against r (the request is not
// modified; apply Result). Without rules every request passes as Missing.
func (f *Filter) Verify(ctx context.Context, r *http.Request) Result {
	return f.verify(ctx, r, f.rule)
}

// VerifyNamed runs the requirement_map entry name against r instead of the
// rules, for a route whose PerRouteConfig names it; ok is false when the
// filter has no such entry.
func (f *Filter) VerifyNamed(ctx context.Context, r *http.Request, name string) (res Result, ok bool) {
	req, ok := f.named[name]
	if !ok {
		return Result{}, false
	}
	return f.verify(ctx, r, req), true
}

func (f *Filter) verify(ctx context.Context, r *http.Request, rule *requirement) Result {
	if rule == nil {
		return Result{Status: Missing}
	}
	st := &state{ctx: ctx, r: r, now: f.now(), verified: map[string]outcome{}}
	o := f.eval(st, rule)
	switch o.kind {
	case 'f':
		return Result{Status: Invalid, Reason: o.reason}
	case 'm':
		return Result{Status: Invalid, Reason: ReasonMissing}
	}
	if st.first == nil {
		return Result{Status: Missing}
	}
	return f.result(st)
}

func (f *Filter) eval(st *state, req *requirement) outcome {
	switch {
	case req.provider != "":
		if o, ok := st.verified[req.provider]; ok {
			return o
		}
		o := f.verifyProvider(st, f.providers[req.provider])
		st.verified[req.provider] = o
		return o
	case req.allowMissing:
		// Alone, allow_missing(_or_failed) is satisfied; inside requires_any
		// it only turns "missing" into success (see below).
		return outcome{kind: 'o'}
	case req.all != nil:
		for _, c := range req.all {
			if o := f.eval(st, c); o.kind != 'o' {
				return o
			}
		}
		return outcome{kind: 'o'}
	default:
		var fail *outcome
		missing := false
		allowMissing := false
		for _, c := range req.any {
			if c.allowMissing {
				allowMissing = true
				if c.allowFailed {
					return outcome{kind: 'o'}
				}
				continue
			}
			o := f.eval(st, c)
			switch o.kind {
			case 'o':
				return o
			case 'f':
				if fail == nil {
					fail = &o
				}
			default:
				missing = true
			}
		}
		if fail != nil {
			return *fail
		}
		if allowMissing || !missing {
			return outcome{kind: 'o'}
		}
		return outcome{kind: 'm', reason: ReasonMissing}
	}
}

// verifyProvider extracts p's token and verifies it.
func (f *Filter) verifyProvider(st *state, p *provider) outcome {
	raw, loc, ok := extract(st.r, p)
	if !ok {
		return outcome{kind: 'm'}
	}
	t, reason := parseToken(raw)
	if reason != "" {
		return outcome{kind: 'f', reason: reason}
	}
	if reason := t.checkClaims(p, st.now); reason != "" {
		return outcome{kind: 'f', reason: reason}
	}
	keys, reason := f.keys(st, p)
	if reason != "" {
		return outcome{kind: 'f', reason: reason}
	}
	if reason := t.verifySig(keys); reason != "" {
		return outcome{kind: 'f', reason: reason}
	}
	vt := &verifiedToken{p: p, t: t, loc: loc}
	if st.first == nil {
		st.first = vt
	}
	st.all = append(st.all, vt)
	return outcome{kind: 'o'}
}

// keys returns p's JWKS, fetching a remote one when the cache is empty or
// stale; a failed fetch fails closed (cached keys past their time are not
// used).
func (f *Filter) keys(st *state, p *provider) ([]key, string) {
	if p.local != nil {
		return p.local, ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cached != nil && st.now.Before(p.cachedUntil) {
		return p.cached, ""
	}
	if f.fetcher == nil {
		return nil, ReasonJWKSFetch
	}
	data, err := f.fetcher.FetchJWKS(st.ctx, p.remoteCluster, p.remoteURI, p.remoteTimeout)
	if err != nil {
		return nil, ReasonJWKSFetch
	}
	keys, err := parseJWKS(data)
	if err != nil {
		return nil, ReasonJWKSFetch
	}
	p.cached, p.cachedUntil = keys, st.now.Add(p.cacheDuration)
	return keys, ""
}

// extract finds p's token: the first location that holds one.
func extract(r *http.Request, p *provider) (string, location, bool) {
	for _, l := range p.locations {
		switch {
		case l.header != "":
			for _, v := range r.Header.Values(l.header) {
				if l.prefix == "" {
					if v != "" {
						return v, l, true
					}
					continue
				}
				if len(v) >= len(l.prefix) && strings.EqualFold(v[:len(l.prefix)], l.prefix) {
					if tok := strings.TrimSpace(v[len(l.prefix):]); tok != "" {
						return tok, l, true
					}
				}
			}
		case l.param != "":
			if v := r.URL.Query().Get(l.param); v != "" {
				return v, l, true
			}
		case l.cookie != "":
			if c, err := r.Cookie(l.cookie); err == nil && c.Value != "" {
				return c.Value, l, true
			}
		}
	}
	return "", location{}, false
}

func (f *Filter) result(st *state) Result {
	vt := st.first
	claims := vt.t.claims
	iss, _ := claims["iss"].(string)
	sub, _ := claims["sub"].(string)
	azp, _ := claims["azp"].(string)
	res := Result{Status: Valid, Principal: iss + "/" + sub, Presenter: azp, Audiences: audiences(claims), Claims: claims,
		Metadata: map[string]map[string]any{}, SetHeaders: map[string]string{}}
	for _, v := range st.all {
		p := v.p
		if p.payloadKey != "" {
			ns := res.Metadata[FilterName]
			if ns == nil {
				ns = map[string]any{}
				res.Metadata[FilterName] = ns
			}
			if _, taken := ns[p.payloadKey]; !taken {
				ns[p.payloadKey] = normalizePayload(v.t.claims, p.spaceDelimited)
			}
		}
		if p.payloadHeader != "" {
			res.SetHeaders[p.payloadHeader] = strings.TrimRight(v.t.payloadSegment, "=")
		}
		for _, ch := range p.claimHeaders {
			if s, ok := claimString(v.t.claims, ch[1]); ok {
				res.SetHeaders[ch[0]] = s
			}
		}
		if !p.forward && v.loc.header != "" {
			res.RemoveHeaders = append(res.RemoveHeaders, v.loc.header)
		}
	}
	return res
}

// normalizePayload splits the space-delimited claims into lists.
func normalizePayload(claims map[string]any, spaceDelimited []string) map[string]any {
	if len(spaceDelimited) == 0 {
		return claims
	}
	out := maps.Clone(claims)
	for _, c := range spaceDelimited {
		if s, ok := out[c].(string); ok {
			var l []any
			for _, f := range strings.Fields(s) {
				l = append(l, f)
			}
			out[c] = l
		}
	}
	return out
}

// claimString reads a (dotted) claim as a header value: strings as is,
// numbers and booleans in JSON form; objects and lists are skipped.
func claimString(claims map[string]any, name string) (string, bool) {
	var cur any = claims
	for _, k := range strings.Split(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false
		}
		if cur, ok = m[k]; !ok {
			return "", false
		}
	}
	switch v := cur.(type) {
	case string:
		return v, true
	case float64, bool:
		b, _ := json.Marshal(v)
		return string(b), true
	}
	return "", false
}

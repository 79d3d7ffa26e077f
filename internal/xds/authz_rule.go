package xds

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	uritemplatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	security "istio.io/api/security/v1beta1"
)

// Where RBAC reads JWT claims: jwt_authn's dynamic metadata (jwt.go sets
// payload_in_metadata to jwtPayloadKey), as Istio does since it dropped its
// own istio_authn filter.
const (
	filterJWTAuthn = "envoy.filters.http.jwt_authn"
	jwtPayloadKey  = "payload"
	spiffePrefix   = "spiffe://"
	uriTemplateExt = "envoy.path.match.uri_template.uri_template_matcher"
)

// errHTTPOnly marks an HTTP-only field met while generating for a TCP chain.
var errHTTPOnly = errors.New("HTTP only")

// keyRule is one AuthorizationPolicy field (or when-condition) with its
// values and notValues, and how one value (or, for multi, all values at once)
// becomes an RBAC permission or principal.
type keyRule struct {
	key               string
	values, notValues []string
	perm              func(key, v string, forTCP bool) (*rbacv3.Permission, error)
	prin              func(key, v string, forTCP bool) (*rbacv3.Principal, error)
	multi             func(key string, vs []string, forTCP bool) (*rbacv3.Principal, error)
}

// rulePolicy translates one Rule like Istio's authz model: every `from` is a
// principal (OR), every `to` a permission (OR); within one, the fields are
// ANDed, each field an OR of its values and an AND-NOT of its notValues;
// when-conditions are appended to every principal (source/request
// attributes) or permission (destination/connection attributes).
// Principals are read with the mesh's trust domains and aliases (tds).
func rulePolicy(policyNS string, r *security.Rule, forTCP bool, action rbacv3.RBAC_Action, tds trustDomains) (*rbacv3.Policy, error) {
	var basePerm, basePrin []keyRule
	for _, w := range r.GetWhen() {
		k := w.GetKey()
		kr := keyRule{key: k, values: w.GetValues(), notValues: w.GetNotValues()}
		if k == "source.principal" {
			kr.values, kr.notValues = tds.principals(kr.values), tds.principals(kr.notValues)
		}
		switch {
		case k == "destination.ip":
			kr.perm = permDestIP
		case k == "destination.port":
			kr.perm = permDestPort
		case k == "connection.sni":
			kr.perm = permSNI
		case strings.HasPrefix(k, "experimental.envoy.filters."):
			kr.perm = permExperimental
		case k == "source.ip":
			kr.prin = prinDirectRemoteIP
		case k == "remote.ip":
			kr.prin = prinRemoteIP
		case k == "source.namespace":
			kr.prin = prinNamespace
		case k == "source.principal":
			kr.prin = prinPrincipal
		case k == "request.auth.principal":
			kr.multi = prinRequestPrincipals
		case k == "request.auth.audiences":
			kr.multi = prinClaim([]string{"aud"})
		case k == "request.auth.presenter":
			kr.multi = prinClaim([]string{"azp"})
		case strings.HasPrefix(k, "request.headers"):
			kr.prin = prinHeader
		case strings.HasPrefix(k, "request.auth.claims"):
			claims, err := nestedClaims(strings.TrimPrefix(k, "request.auth.claims"))
			if err != nil {
				return nil, fmt.Errorf("when key %q: %w", k, err)
			}
			kr.multi = prinClaim(claims)
		default:
			return nil, fmt.Errorf("unknown attribute %s", k)
		}
		if kr.perm != nil {
			basePerm = append(basePerm, kr)
		} else {
			basePrin = append(basePrin, kr)
		}
	}

	pol := &rbacv3.Policy{}
	principalLists := [][]keyRule{basePrin}
	if froms := r.GetFrom(); len(froms) > 0 {
		principalLists = principalLists[:0]
		for _, f := range froms {
			s := f.GetSource()
			list := []keyRule{
				{key: "source.serviceAccounts", values: s.GetServiceAccounts(), notValues: s.GetNotServiceAccounts(), prin: prinServiceAccount(policyNS)},
				{key: "source.trustDomains", values: tds.trustDomainValues(s.GetTrustDomains()),
					notValues: tds.trustDomainValues(s.GetNotTrustDomains()), prin: prinTrustDomain},
				{key: "source.principals", values: tds.principals(s.GetPrincipals()), notValues: tds.principals(s.GetNotPrincipals()), prin: prinPrincipal},
				{key: "source.requestPrincipals", values: s.GetRequestPrincipals(), notValues: s.GetNotRequestPrincipals(), multi: prinRequestPrincipals},
				{key: "source.namespaces", values: s.GetNamespaces(), notValues: s.GetNotNamespaces(), prin: prinNamespace},
				{key: "source.remoteIpBlocks", values: s.GetRemoteIpBlocks(), notValues: s.GetNotRemoteIpBlocks(), prin: prinRemoteIP},
				{key: "source.ipBlocks", values: s.GetIpBlocks(), notValues: s.GetNotIpBlocks(), prin: prinDirectRemoteIP},
			}
			principalLists = append(principalLists, append(list, basePrin...))
		}
	}
	permissionLists := [][]keyRule{basePerm}
	if tos := r.GetTo(); len(tos) > 0 {
		permissionLists = permissionLists[:0]
		for _, t := range tos {
			o := t.GetOperation()
			list := []keyRule{
				{key: "operation.hosts", values: o.GetHosts(), notValues: o.GetNotHosts(), perm: permHost},
				{key: "operation.methods", values: o.GetMethods(), notValues: o.GetNotMethods(), perm: permMethod},
				{key: "operation.paths", values: o.GetPaths(), notValues: o.GetNotPaths(), perm: permPath},
				{key: "operation.ports", values: o.GetPorts(), notValues: o.GetNotPorts(), perm: permDestPort},
			}
			permissionLists = append(permissionLists, append(list, basePerm...))
		}
	}
	for _, list := range permissionLists {
		var and []*rbacv3.Permission
		for _, kr := range list {
			ps, err := kr.permissions(forTCP, action)
			if err != nil {
				return nil, err
			}
			and = append(and, ps...)
		}
		if len(and) == 0 {
			and = append(and, &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}})
		}
		pol.Permissions = append(pol.Permissions, &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: and}}})
	}
	for _, list := range principalLists {
		var and []*rbacv3.Principal
		for _, kr := range list {
			ps, err := kr.principals(forTCP, action)
			if err != nil {
				return nil, err
			}
			and = append(and, ps...)
		}
		if len(and) == 0 {
			and = append(and, &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}})
		}
		pol.Principals = append(pol.Principals, &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: and}}})
	}
	return pol, nil
}

// tolerate is Istio's error rule: for ALLOW an error drops the whole rule
// (a narrower allow); for DENY and AUDIT the value is skipped (a wider deny).
func tolerate(action rbacv3.RBAC_Action, err error) error {
	if action == rbacv3.RBAC_ALLOW {
		return err
	}
	return nil
}

func (kr keyRule) permissions(forTCP bool, action rbacv3.RBAC_Action) ([]*rbacv3.Permission, error) {
	var out []*rbacv3.Permission
	for i, vs := range [][]string{kr.values, kr.notValues} {
		var or []*rbacv3.Permission
		for _, v := range vs {
			p, err := kr.perm(kr.key, v, forTCP)
			if err != nil {
				if err := tolerate(action, err); err != nil {
					return nil, err
				}
				continue
			}
			or = append(or, p)
		}
		if len(or) == 0 {
			continue
		}
		p := &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: or}}}
		if i == 1 {
			p = &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: p}}
		}
		out = append(out, p)
	}
	return out, nil
}

func (kr keyRule) principals(forTCP bool, action rbacv3.RBAC_Action) ([]*rbacv3.Principal, error) {
	var out []*rbacv3.Principal
	for i, vs := range [][]string{kr.values, kr.notValues} {
		if len(vs) == 0 {
			continue
		}
		var p *rbacv3.Principal
		if kr.multi != nil {
			m, err := kr.multi(kr.key, vs, forTCP)
			if err != nil {
				if err := tolerate(action, err); err != nil {
					return nil, err
				}
				continue
			}
			p = m
		} else {
			var or []*rbacv3.Principal
			for _, v := range vs {
				m, err := kr.prin(kr.key, v, forTCP)
				if err != nil {
					if err := tolerate(action, err); err != nil {
						return nil, err
					}
					continue
				}
				or = append(or, m)
			}
			if len(or) == 0 {
				continue
			}
			p = &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: or}}}
		}
		if i == 1 {
			p = &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: p}}
		}
		out = append(out, p)
	}
	return out, nil
}

// --- permissions (destination side) ---

func permHost(key, v string, forTCP bool) (*rbacv3.Permission, error) {
	if forTCP {
		return nil, fmt.Errorf("%q is %w", key, errHTTPOnly)
	}
	return permHeader(headerMatch(":authority", v, true)), nil
}

func permMethod(key, v string, forTCP bool) (*rbacv3.Permission, error) {
	if forTCP {
		return nil, fmt.Errorf("%q is %w", key, errHTTPOnly)
	}
	return permHeader(headerMatch(":method", v, false)), nil
}

func permPath(key, v string, forTCP bool) (*rbacv3.Permission, error) {
	if forTCP {
		return nil, fmt.Errorf("%q is %w", key, errHTTPOnly)
	}
	if strings.Contains(v, "{*}") || strings.Contains(v, "{**}") {
		tmpl := strings.NewReplacer("{**}", "**", "{*}", "*").Replace(v)
		return &rbacv3.Permission{Rule: &rbacv3.Permission_UriTemplate{UriTemplate: &corev3.TypedExtensionConfig{
			Name: uriTemplateExt, TypedConfig: toAny(&uritemplatev3.UriTemplateMatchConfig{PathTemplate: tmpl})}}}, nil
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
		Rule: &matcherv3.PathMatcher_Path{Path: stringMatch(v)}}}}, nil
}

func permDestPort(_, v string, _ bool) (*rbacv3.Permission, error) {
	p, err := strconv.ParseUint(v, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("invalid port %q", v)
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: uint32(p)}}, nil
}

func permDestIP(_, v string, _ bool) (*rbacv3.Permission, error) {
	c, err := cidr(v)
	if err != nil {
		return nil, err
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationIp{DestinationIp: c}}, nil
}

func permSNI(_, v string, _ bool) (*rbacv3.Permission, error) {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_RequestedServerName{RequestedServerName: stringMatch(v)}}, nil
}

// permExperimental maps "experimental.envoy.filters.a.b[c]" to a metadata
// matcher on filter envoy.filters.a.b, key c.
func permExperimental(key, v string, _ bool) (*rbacv3.Permission, error) {
	filter, k, ok := strings.Cut(strings.TrimSuffix(strings.TrimPrefix(key, "experimental."), "]"), "[")
	if !ok || k == "" {
		return nil, fmt.Errorf("invalid key %q", key)
	}
	vm := &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: stringMatch(v)}}
	if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") {
		vm = listOneOf(&matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: stringMatch(strings.Trim(v, "[]"))}})
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Metadata{Metadata: metadataMatch(filter, []string{k}, vm)}}, nil
}

func permHeader(h *routev3.HeaderMatcher) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: h}}
}

// --- principals (source side) ---

func prinPrincipal(_, v string, _ bool) (*rbacv3.Principal, error) {
	return authenticated(stringMatchWithPrefix(v, spiffePrefix)), nil
}

func prinNamespace(_, v string, _ bool) (*rbacv3.Principal, error) {
	return authenticated(regexMatch(".*/ns/" + strings.ReplaceAll(v, "*", ".*") + "/.*")), nil
}

// prinServiceAccount matches "sa" (in the policy's namespace) or "ns/sa".
func prinServiceAccount(policyNS string) func(_, v string, _ bool) (*rbacv3.Principal, error) {
	return func(_, v string, _ bool) (*rbacv3.Principal, error) {
		ns, sa, ok := strings.Cut(v, "/")
		if !ok {
			ns, sa = policyNS, v
		}
		return authenticated(regexMatch(spiffePrefix + ".+/ns/" + regexp.QuoteMeta(ns) + "/(.+/|)sa/" + regexp.QuoteMeta(sa) + "(/.+)?")), nil
	}
}

// prinTrustDomain matches SPIFFE IDs of the trust domain v.
func prinTrustDomain(_, v string, _ bool) (*rbacv3.Principal, error) {
	if v == "*" {
		return authenticated(regexMatch(".+")), nil
	}
	return authenticated(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: spiffePrefix + v + "/"}}), nil
}

func prinDirectRemoteIP(_, v string, _ bool) (*rbacv3.Principal, error) {
	c, err := cidr(v)
	if err != nil {
		return nil, err
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: c}}, nil
}

func prinRemoteIP(_, v string, _ bool) (*rbacv3.Principal, error) {
	c, err := cidr(v)
	if err != nil {
		return nil, err
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: c}}, nil
}

// prinHeader matches request.headers[NAME]; Envoy joins repeated headers
// with ",", so exact/prefix/suffix values become a regex that matches any
// one of the comma-separated values (Istio's form).
func prinHeader(key, v string, forTCP bool) (*rbacv3.Principal, error) {
	if forTCP {
		return nil, fmt.Errorf("%q is %w", key, errHTTPOnly)
	}
	name, ok := strings.CutPrefix(key, "request.headers[")
	name, ok2 := strings.CutSuffix(name, "]")
	if !ok || !ok2 || name == "" {
		return nil, fmt.Errorf("invalid key %q", key)
	}
	h := &routev3.HeaderMatcher{Name: name}
	if v == "*" {
		h.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
	} else {
		var p string
		switch {
		case strings.HasPrefix(v, "*"):
			p = ".*" + regexp.QuoteMeta(v[1:])
		case strings.HasSuffix(v, "*"):
			p = regexp.QuoteMeta(v[:len(v)-1]) + ".*"
		default:
			p = regexp.QuoteMeta(v)
		}
		h.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: regexMatch(
			"^" + p + "$|^" + p + ",.*|.*," + p + ",.*|.*," + p + "$")}
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Header{Header: h}}, nil
}

// prinRequestPrincipals matches "iss/sub" values (the issuer may contain
// "/": the last one splits) against the iss and sub claims, with Istio's
// wildcard rules on either side.
func prinRequestPrincipals(key string, vs []string, forTCP bool) (*rbacv3.Principal, error) {
	if forTCP {
		return nil, fmt.Errorf("%q is %w", key, errHTTPOnly)
	}
	anyValue := regexMatch(".+")
	var or []*rbacv3.Principal
	for _, v := range vs {
		idx := strings.LastIndex(v, "/")
		found := idx >= 0
		iss, sub := v, ""
		if found {
			iss, sub = v[:idx], v[idx+1:]
		}
		var mi, ms *matcherv3.StringMatcher
		switch {
		case v == "*":
			mi, ms = anyValue, anyValue
		case strings.HasPrefix(v, "*"):
			switch {
			case !found:
				mi, ms = anyValue, suffixMatch(v[1:])
			case iss == "*":
				mi, ms = anyValue, exactMatch(sub)
			default:
				mi, ms = suffixMatch(iss[1:]), exactMatch(sub)
			}
		case strings.HasSuffix(v, "*"):
			switch {
			case !found:
				mi, ms = prefixMatch(v[:len(v)-1]), anyValue
			case sub == "*":
				mi, ms = exactMatch(iss), anyValue
			default:
				mi, ms = exactMatch(iss), prefixMatch(sub[:len(sub)-1])
			}
		default:
			mi, ms = exactMatch(iss), exactMatch(sub)
		}
		or = append(or, &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: []*rbacv3.Principal{
			jwtClaimString("iss", mi), jwtClaimString("sub", ms)}}}})
	}
	if len(or) == 1 {
		return or[0], nil
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: or}}}, nil
}

// prinClaim matches a (nested) claim whose value is a string or a list
// containing a string matching any of the values.
func prinClaim(path []string) func(key string, vs []string, forTCP bool) (*rbacv3.Principal, error) {
	return func(key string, vs []string, forTCP bool) (*rbacv3.Principal, error) {
		if forTCP {
			return nil, fmt.Errorf("%q is %w", key, errHTTPOnly)
		}
		var ms []*matcherv3.ValueMatcher
		for _, v := range vs {
			ms = append(ms, &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: stringMatch(v)}})
		}
		one := ms[0]
		if len(ms) > 1 {
			one = &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_OrMatch{OrMatch: &matcherv3.OrMatcher{ValueMatchers: ms}}}
		}
		vm := &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_OrMatch{OrMatch: &matcherv3.OrMatcher{
			ValueMatchers: []*matcherv3.ValueMatcher{listOneOf(one), one}}}}
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{
			Metadata: metadataMatch(filterJWTAuthn, append([]string{jwtPayloadKey}, path...), vm)}}, nil
	}
}

func jwtClaimString(claim string, m *matcherv3.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{Metadata: metadataMatch(filterJWTAuthn,
		[]string{jwtPayloadKey, claim}, &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: m}})}}
}

// nestedClaims parses "[a][b]" (or "[a.b]" as one claim name) into names.
func nestedClaims(s string) ([]string, error) {
	var out []string
	for len(s) > 0 {
		if s[0] != '[' {
			return nil, fmt.Errorf("expecting [NAME], found %q", s)
		}
		end := strings.IndexByte(s, ']')
		if end < 0 || strings.IndexByte(s[1:end], '[') >= 0 || end == 1 {
			return nil, fmt.Errorf("expecting [NAME], found %q", s)
		}
		out = append(out, s[1:end])
		s = s[end+1:]
	}
	if len(out) == 0 {
		return nil, errors.New("missing claim name")
	}
	return out, nil
}

// --- matcher helpers ---

func authenticated(m *matcherv3.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: m}}}
}

// stringMatch is Istio's value rule: "*" any non-empty, "*x" suffix,
// "x*" prefix, else exact.
func stringMatch(v string) *matcherv3.StringMatcher {
	switch {
	case v == "*":
		return regexMatch(".+")
	case strings.HasPrefix(v, "*"):
		return suffixMatch(v[1:])
	case strings.HasSuffix(v, "*"):
		return prefixMatch(v[:len(v)-1])
	}
	return exactMatch(v)
}

// stringMatchWithPrefix is stringMatch for values that are stored with a
// prefix (SPIFFE IDs without "spiffe://").
func stringMatchWithPrefix(v, prefix string) *matcherv3.StringMatcher {
	switch {
	case v == "*":
		return regexMatch(".+")
	case strings.HasPrefix(v, "*"):
		return regexMatch(regexp.QuoteMeta(prefix) + ".*" + regexp.QuoteMeta(v[1:]))
	case strings.HasSuffix(v, "*"):
		return prefixMatch(prefix + v[:len(v)-1])
	}
	return exactMatch(prefix + v)
}

// headerMatch: "*" presence, else stringMatch (ignoring case for hosts).
func headerMatch(name, v string, ignoreCase bool) *routev3.HeaderMatcher {
	h := &routev3.HeaderMatcher{Name: name}
	if v == "*" {
		h.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
		return h
	}
	m := stringMatch(v)
	m.IgnoreCase = ignoreCase
	h.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: m}
	return h
}

func exactMatch(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}
}

func prefixMatch(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: v}}
}

func suffixMatch(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: v}}
}

func regexMatch(re string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: re}}}
}

func listOneOf(v *matcherv3.ValueMatcher) *matcherv3.ValueMatcher {
	return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{
		MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: v}}}}
}

func metadataMatch(filter string, path []string, v *matcherv3.ValueMatcher) *matcherv3.MetadataMatcher {
	m := &matcherv3.MetadataMatcher{Filter: filter, Value: v}
	for _, k := range path {
		m.Path = append(m.Path, &matcherv3.MetadataMatcher_PathSegment{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: k}})
	}
	return m
}

// cidr parses "1.2.3.4" or "1.2.3.0/24" (IPv6 alike).
func cidr(v string) (*corev3.CidrRange, error) {
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return nil, fmt.Errorf("invalid CIDR %q", v)
		}
		return &corev3.CidrRange{AddressPrefix: p.Addr().String(), PrefixLen: u32(uint32(p.Bits()))}, nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return nil, fmt.Errorf("invalid IP %q", v)
	}
	return &corev3.CidrRange{AddressPrefix: a.String(), PrefixLen: u32(uint32(a.BitLen()))}, nil
}

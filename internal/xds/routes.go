package xds

import (
	"maps"
	"regexp"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// routeScope says where a VirtualService's routes are being generated.
type routeScope struct {
	// port is the service port (sidecar, grpc) or the Gateway server port.
	port uint32
	// gateway is "mesh" or the Gateway's "namespace/name".
	gateway string
}

// vsRoutes translates vs's HTTP routes for scope, in order (first match
// wins). Matches that cannot apply here (another port, gateway, source
// labels or namespace than this proxy's) are dropped at generation, as in
// Istio; a route whose every match is dropped disappears. Generation stops
// after a catch-all route, since nothing after it can match.
func (g *gen) vsRoutes(vs *model.VirtualService, sc routeScope) []*routev3.Route {
	var out []*routev3.Route
	for _, r := range vs.HTTP {
		matches := r.GetMatch()
		if len(matches) == 0 {
			matches = []*networking.HTTPMatchRequest{nil}
		}
		catchAll := false
		for _, m := range matches {
			if !g.matchApplies(m, sc) {
				continue
			}
			rt := g.translateRoute(r, m, sc)
			if vs.GatewaySemantics {
				gatewaySemantics(rt)
			}
			rt.Decorator = &routev3.Decorator{Operation: routeOperation(rt, vs.Name, sc.port)}
			if !g.grpc {
				rt.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{metadataIstio: {Fields: map[string]*structpb.Value{
					metadataConfig: structpb.NewStringValue(configPath(kindVirtualService, vs.Namespace, vs.Name))}}}}
			}
			out = append(out, rt)
			if isCatchAll(m) {
				catchAll = true
				break
			}
		}
		if catchAll {
			break
		}
	}
	return out
}

func (g *gen) matchApplies(m *networking.HTTPMatchRequest, sc routeScope) bool {
	if m == nil {
		return true
	}
	if m.GetPort() != 0 && m.GetPort() != sc.port {
		return false
	}
	if len(m.GetGateways()) > 0 && !slices.Contains(m.GetGateways(), sc.gateway) {
		return false
	}
	if !registry.LabelsMatch(m.GetSourceLabels(), g.proxy.Labels) {
		return false
	}
	if ns := m.GetSourceNamespace(); ns != "" && ns != g.proxy.Namespace {
		return false
	}
	return true
}

// gatewaySemantics applies the Gateway API's rules to a route made from an
// HTTPRoute, as istiod does: a cluster that does not exist answers 500; a
// path prefix other than "/" matches
// whole segments (path_separated_prefix), and a prefix rewrite to "/"
// removes the matched prefix without leaving a double slash.
func gatewaySemantics(rt *routev3.Route) {
	if a := rt.GetRoute(); a != nil {
		// A backend that could not be resolved answers 500, as the spec asks.
		a.ClusterNotFoundResponseCode = routev3.RouteAction_INTERNAL_SERVER_ERROR
	}
	p, ok := rt.GetMatch().GetPathSpecifier().(*routev3.RouteMatch_Prefix)
	if !ok || p.Prefix == "/" {
		return
	}
	prefix := strings.TrimSuffix(p.Prefix, "/")
	rt.Match.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: prefix}
	if a := rt.GetRoute(); a != nil && a.PrefixRewrite == "/" {
		a.PrefixRewrite = ""
		a.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{
			Pattern:      &matcherv3.RegexMatcher{Regex: "^" + regexp.QuoteMeta(prefix) + `(/?)(.*)`},
			Substitution: `/\2`,
		}
	}
}

func isCatchAll(m *networking.HTTPMatchRequest) bool {
	if m == nil {
		return true
	}
	uriAll := m.GetUri() == nil || (m.GetUri().GetPrefix() == "/")
	return uriAll && len(m.GetHeaders()) == 0 && len(m.GetWithoutHeaders()) == 0 && len(m.GetQueryParams()) == 0 &&
		m.GetMethod() == nil && m.GetAuthority() == nil && m.GetScheme() == nil
}

func (g *gen) translateRoute(r *networking.HTTPRoute, m *networking.HTTPMatchRequest, sc routeScope) *routev3.Route {
	out := &routev3.Route{Name: r.GetName(), Match: translateMatch(m)}
	if m.GetName() != "" {
		if out.Name != "" {
			out.Name += "."
		}
		out.Name += m.GetName()
	}
	switch {
	case r.GetRedirect() != nil:
		out.Action = &routev3.Route_Redirect{Redirect: redirectAction(r.GetRedirect())}
	case r.GetDirectResponse() != nil:
		out.Action = &routev3.Route_DirectResponse{DirectResponse: directResponse(r.GetDirectResponse())}
	default:
		out.Action = &routev3.Route_Route{Route: g.routeAction(r, m, sc, out)}
	}
	addHeaderOps(out, r.GetHeaders())
	if f := r.GetFault(); f != nil {
		if hf := faultConfig(f); hf != nil {
			setPerFilter(out, filterFault, toAny(hf))
		}
	}
	if c := r.GetCorsPolicy(); c != nil && !g.grpc {
		setPerFilter(out, filterCORS, toAny(corsPolicy(c)))
	}
	return out
}

func setPerFilter(r *routev3.Route, name string, a *anypb.Any) {
	if r.TypedPerFilterConfig == nil {
		r.TypedPerFilterConfig = map[string]*anypb.Any{}
	}
	r.TypedPerFilterConfig[name] = a
}

func translateMatch(m *networking.HTTPMatchRequest) *routev3.RouteMatch {
	rm := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	if m == nil {
		return rm
	}
	switch u := m.GetUri().GetMatchType().(type) {
	case *networking.StringMatch_Exact:
		rm.PathSpecifier = &routev3.RouteMatch_Path{Path: u.Exact}
	case *networking.StringMatch_Prefix:
		rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: u.Prefix}
	case *networking.StringMatch_Regex:
		rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: u.Regex}}
	}
	if m.GetIgnoreUriCase() {
		rm.CaseSensitive = wrapperspb.Bool(false)
	}
	for _, k := range slices.Sorted(maps.Keys(m.GetHeaders())) {
		if cm := claimMatcher(k, m.GetHeaders()[k], false); cm != nil {
			rm.DynamicMetadata = append(rm.DynamicMetadata, cm)
			continue
		}
		rm.Headers = append(rm.Headers, headerMatcher(k, m.GetHeaders()[k], false))
	}
	for _, k := range slices.Sorted(maps.Keys(m.GetWithoutHeaders())) {
		if cm := claimMatcher(k, m.GetWithoutHeaders()[k], true); cm != nil {
			rm.DynamicMetadata = append(rm.DynamicMetadata, cm)
			continue
		}
		rm.Headers = append(rm.Headers, headerMatcher(k, m.GetWithoutHeaders()[k], true))
	}
	if m.GetMethod() != nil {
		rm.Headers = append(rm.Headers, headerMatcher(":method", m.GetMethod(), false))
	}
	if m.GetAuthority() != nil {
		rm.Headers = append(rm.Headers, headerMatcher(":authority", m.GetAuthority(), false))
	}
	if m.GetScheme() != nil {
		rm.Headers = append(rm.Headers, headerMatcher(":scheme", m.GetScheme(), false))
	}
	for _, k := range slices.Sorted(maps.Keys(m.GetQueryParams())) {
		q := &routev3.QueryParameterMatcher{Name: k}
		if sm := stringMatcher(m.GetQueryParams()[k]); sm != nil && !(isExact(sm) && sm.GetExact() == "") {
			q.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: sm}
		} else {
			q.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}
		}
		rm.QueryParameters = append(rm.QueryParameters, q)
	}
	return rm
}

// claimHeader is Istio's pseudo-header for routing on verified JWT claims.
const claimHeader = "@request.auth.claims"

// claimMatcher turns a header match on "@request.auth.claims.a.b" (or
// "@request.auth.claims[a][b]") into Istio's match on the verified claim in
// jwt_authn's dynamic metadata: a string claim equal to, or a list claim
// holding, a matching value. Only gateways verify tokens before routing
// (jwt.go, clear_route_cache), so on sidecars such a route never matches,
// as in Istio. It returns nil for any other header.
func claimMatcher(name string, s *networking.StringMatch, invert bool) *matcherv3.MetadataMatcher {
	if !strings.HasPrefix(strings.ToLower(name), claimHeader) {
		return nil
	}
	rest := name[len(claimHeader):] // claim names keep their case
	var claims []string
	switch {
	case strings.HasPrefix(rest, ".") && len(rest) > 1:
		claims = strings.Split(rest[1:], ".")
	case strings.HasPrefix(rest, "[") && strings.HasSuffix(rest, "]") && len(rest) > 2:
		claims = strings.Split(rest[1:len(rest)-1], "][")
	default:
		return nil
	}
	one := &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: true}}
	if sm := stringMatcher(s); sm != nil {
		one = &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: sm}}
	}
	m := metadataMatch(filterJWTAuthn, append([]string{jwtPayloadKey}, claims...), &matcherv3.ValueMatcher{
		MatchPattern: &matcherv3.ValueMatcher_OrMatch{OrMatch: &matcherv3.OrMatcher{
			ValueMatchers: []*matcherv3.ValueMatcher{listOneOf(one), one}}}})
	m.Invert = invert
	return m
}

func isExact(sm *matcherv3.StringMatcher) bool {
	_, ok := sm.GetMatchPattern().(*matcherv3.StringMatcher_Exact)
	return ok
}

// headerMatcher translates an Istio StringMatch on a header; an empty
// match means "present" (Istio's rule), invert for withoutHeaders.
func headerMatcher(name string, s *networking.StringMatch, invert bool) *routev3.HeaderMatcher {
	h := &routev3.HeaderMatcher{Name: strings.ToLower(name), InvertMatch: invert}
	if sm := stringMatcher(s); sm != nil {
		h.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: sm}
	} else {
		h.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
	}
	return h
}

func stringMatcher(s *networking.StringMatch) *matcherv3.StringMatcher {
	switch m := s.GetMatchType().(type) {
	case *networking.StringMatch_Exact:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: m.Exact}}
	case *networking.StringMatch_Prefix:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: m.Prefix}}
	case *networking.StringMatch_Regex:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: m.Regex}}}
	}
	return nil
}

// defaultRoute is what a service gets without a VirtualService: everything
// to outbound|port||host with Istio's default timeout and retries.
func (g *gen) defaultRoute(host string, port uint32) *routev3.Route {
	svc := g.snap.LookupService(g.proxy, host)
	ns := ""
	if svc != nil {
		ns = svc.Namespace
	}
	dr := g.snap.DestinationRuleFor(g.proxy, host, ns)
	if g.cache == nil {
		return g.newDefaultRoute(host, port, dr)
	}
	key, ok := routeKeyFor(host, port, dr)
	if !ok {
		return g.newDefaultRoute(host, port, dr)
	}
	return g.cache.route(key, func() *routev3.Route { return g.newDefaultRoute(host, port, dr) })
}

// newDefaultRoute builds the default route; it reads only host, port and
// dr (the Cache key).
func (g *gen) newDefaultRoute(host string, port uint32, dr *model.MergedDestinationRule) *routev3.Route {
	var hash []*routev3.RouteAction_HashPolicy
	if dr != nil {
		hash = hashPolicies(effectivePolicy(port, dr.TrafficPolicy, nil).lb)
	}
	return &routev3.Route{
		Name:      "default",
		Match:     &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Decorator: &routev3.Decorator{Operation: host + ":" + portName(port) + "/*"},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: OutboundCluster(port, "", host)},
			Timeout:          durationpb.New(0),
			RetryPolicy:      defaultRetryPolicy(),
			HashPolicy:       hash,
		}},
	}
}

// hashPolicyFor returns the route hash policy of the DestinationRule for
// host:port (consistentHash), if any.
func (g *gen) hashPolicyFor(host string, port uint32) []*routev3.RouteAction_HashPolicy {
	svc := g.snap.LookupService(g.proxy, host)
	ns := ""
	if svc != nil {
		ns = svc.Namespace
	}
	dr := g.snap.DestinationRuleFor(g.proxy, host, ns)
	if dr == nil {
		return nil
	}
	return hashPolicies(effectivePolicy(port, dr.TrafficPolicy, nil).lb)
}

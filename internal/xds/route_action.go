package xds

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
)

// Istio's default retry policy for routes without `retries`.
const (
	defaultRetryOn       = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
	defaultRetryAttempts = 2
	retryHostAttempts    = 5
)

func defaultRetryPolicy() *routev3.RetryPolicy {
	return &routev3.RetryPolicy{
		RetryOn:                       defaultRetryOn,
		NumRetries:                    u32(defaultRetryAttempts),
		RetriableStatusCodes:          []uint32{503},
		RetryHostPredicate:            []*routev3.RetryPolicy_RetryHostPredicate{previousHosts()},
		HostSelectionRetryMaxAttempts: retryHostAttempts,
	}
}

func previousHosts() *routev3.RetryPolicy_RetryHostPredicate {
	return &routev3.RetryPolicy_RetryHostPredicate{Name: "envoy.retry_host_predicates.previous_hosts",
		ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: toAny(&previoushostsv3.PreviousHostsPredicate{})}}
}

// retryPolicy translates HTTPRetry as Istio does: no retries block gives the
// default; attempts 0 disables retries; numeric retryOn entries become
// retriable status codes.
func retryPolicy(r *networking.HTTPRetry) *routev3.RetryPolicy {
	if r == nil {
		return defaultRetryPolicy()
	}
	if r.GetAttempts() <= 0 {
		return nil
	}
	p := defaultRetryPolicy()
	p.NumRetries = u32(uint32(r.GetAttempts()))
	if r.GetRetryOn() != "" {
		p.RetriableStatusCodes = nil
		var on []string
		for _, s := range strings.Split(r.GetRetryOn(), ",") {
			s = strings.TrimSpace(s)
			if code, err := strconv.ParseUint(s, 10, 32); err == nil {
				p.RetriableStatusCodes = append(p.RetriableStatusCodes, uint32(code))
				continue
			}
			if s != "" {
				on = append(on, s)
			}
		}
		if len(p.RetriableStatusCodes) > 0 && !slices.Contains(on, "retriable-status-codes") {
			on = append(on, "retriable-status-codes")
		}
		p.RetryOn = strings.Join(on, ",")
	}
	if r.GetPerTryTimeout() != nil {
		p.PerTryTimeout = r.GetPerTryTimeout()
	}
	if r.GetRetryIgnorePreviousHosts() != nil && !r.GetRetryIgnorePreviousHosts().GetValue() {
		p.RetryHostPredicate = nil
		p.HostSelectionRetryMaxAttempts = 0
	}
	if b := r.GetBackoff(); b != nil {
		p.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: b}
	}
	return p
}

// routeAction builds the forwarding action of r for match m.
func (g *gen) routeAction(r *networking.HTTPRoute, m *networking.HTTPMatchRequest, sc routeScope, route *routev3.Route) *routev3.RouteAction {
	a := &routev3.RouteAction{Timeout: durationpb.New(0), RetryPolicy: retryPolicy(r.GetRetries())}
	if t := r.GetTimeout(); t != nil {
		a.Timeout = t
	}
	dests := r.GetRoute()
	if len(dests) > 1 {
		dests = slices.DeleteFunc(slices.Clone(dests), func(d *networking.HTTPRouteDestination) bool { return d.GetWeight() == 0 })
		if len(dests) == 0 {
			dests = r.GetRoute()
		}
	}
	switch len(dests) {
	case 0:
		a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: BlackHoleCluster}
	case 1:
		d := dests[0].GetDestination()
		a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: g.destinationCluster(d, sc)}
		addHeaderOps(route, dests[0].GetHeaders())
	default:
		wc := &routev3.WeightedCluster{}
		for _, d := range dests {
			cw := &routev3.WeightedCluster_ClusterWeight{Name: g.destinationCluster(d.GetDestination(), sc), Weight: u32(uint32(d.GetWeight()))}
			if h := d.GetHeaders(); h != nil {
				cw.RequestHeadersToAdd = headerOptions(h.GetRequest())
				cw.RequestHeadersToRemove = h.GetRequest().GetRemove()
				cw.ResponseHeadersToAdd = headerOptions(h.GetResponse())
				cw.ResponseHeadersToRemove = h.GetResponse().GetRemove()
			}
			wc.Clusters = append(wc.Clusters, cw)
		}
		a.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
	}
	if len(dests) > 0 {
		d := dests[0].GetDestination()
		a.HashPolicy = g.hashPolicyFor(d.GetHost(), g.destinationPort(d, sc))
	}
	if rw := r.GetRewrite(); rw != nil {
		if rw.GetUri() != "" {
			a.PrefixRewrite = rw.GetUri()
		}
		if rw.GetAuthority() != "" {
			a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: rw.GetAuthority()}
		}
		if rr := rw.GetUriRegexRewrite(); rr != nil {
			a.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{Pattern: &matcherv3.RegexMatcher{Regex: rr.GetMatch()}, Substitution: rr.GetRewrite()}
		}
	}
	if mr := r.GetMirror(); mr != nil {
		pct := 100.0
		if mp := r.GetMirrorPercentage(); mp != nil {
			pct = mp.GetValue()
		} else if mp := r.GetMirrorPercent(); mp != nil {
			pct = float64(mp.GetValue())
		}
		a.RequestMirrorPolicies = append(a.RequestMirrorPolicies, g.mirrorPolicy(mr, pct, sc))
	}
	for _, mp := range r.GetMirrors() {
		pct := 100.0
		if mp.GetPercentage() != nil {
			pct = mp.GetPercentage().GetValue()
		}
		a.RequestMirrorPolicies = append(a.RequestMirrorPolicies, g.mirrorPolicy(mp.GetDestination(), pct, sc))
	}
	_ = m
	return a
}

func (g *gen) mirrorPolicy(d *networking.Destination, pct float64, sc routeScope) *routev3.RouteAction_RequestMirrorPolicy {
	return &routev3.RouteAction_RequestMirrorPolicy{
		Cluster:         g.destinationCluster(d, sc),
		RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: fraction(pct)},
	}
}

// fraction turns an Istio percentage (0-100, fractional) into per-million.
func fraction(pct float64) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: uint32(pct * 10000), Denominator: typev3.FractionalPercent_MILLION}
}

// destinationPort picks a destination's port: as written, else the
// service's only port, else the port being routed.
func (g *gen) destinationPort(d *networking.Destination, sc routeScope) uint32 {
	if p := d.GetPort().GetNumber(); p != 0 {
		return p
	}
	if svc := g.snap.LookupService(g.proxy, d.GetHost()); svc != nil && len(svc.Ports) == 1 {
		return svc.Ports[0].Number
	}
	return sc.port
}

func (g *gen) destinationCluster(d *networking.Destination, sc routeScope) string {
	return OutboundCluster(g.destinationPort(d, sc), d.GetSubset(), d.GetHost())
}

func redirectAction(r *networking.HTTPRedirect) *routev3.RedirectAction {
	out := &routev3.RedirectAction{HostRedirect: r.GetAuthority()}
	if sch := r.GetScheme(); sch != "" {
		out.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: sch}
	}
	if r.GetUri() != "" {
		out.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: r.GetUri()}
	} else if r.GetPrefixRewrite() != "" {
		out.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: r.GetPrefixRewrite()}
	}
	if p := r.GetPort(); p != 0 {
		out.PortRedirect = p
	}
	switch r.GetRedirectCode() {
	case 302:
		out.ResponseCode = routev3.RedirectAction_FOUND
	case 303:
		out.ResponseCode = routev3.RedirectAction_SEE_OTHER
	case 307:
		out.ResponseCode = routev3.RedirectAction_TEMPORARY_REDIRECT
	case 308:
		out.ResponseCode = routev3.RedirectAction_PERMANENT_REDIRECT
	default:
		out.ResponseCode = routev3.RedirectAction_MOVED_PERMANENTLY
	}
	return out
}

func directResponse(d *networking.HTTPDirectResponse) *routev3.DirectResponseAction {
	out := &routev3.DirectResponseAction{Status: d.GetStatus()}
	if b := d.GetBody(); b != nil {
		if s := b.GetString_(); s != "" {
			out.Body = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: s}}
		} else if len(b.GetBytes()) > 0 {
			out.Body = &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b.GetBytes()}}
		}
	}
	return out
}

// addHeaderOps appends VirtualService header edits to a route.
func addHeaderOps(r *routev3.Route, h *networking.Headers) {
	if h == nil {
		return
	}
	r.RequestHeadersToAdd = append(r.RequestHeadersToAdd, headerOptions(h.GetRequest())...)
	r.RequestHeadersToRemove = append(r.RequestHeadersToRemove, h.GetRequest().GetRemove()...)
	r.ResponseHeadersToAdd = append(r.ResponseHeadersToAdd, headerOptions(h.GetResponse())...)
	r.ResponseHeadersToRemove = append(r.ResponseHeadersToRemove, h.GetResponse().GetRemove()...)
}

// headerOptions: set overwrites, add appends; keys sorted for stable output.
func headerOptions(ops *networking.Headers_HeaderOperations) []*corev3.HeaderValueOption {
	var out []*corev3.HeaderValueOption
	for _, k := range slices.Sorted(maps.Keys(ops.GetSet())) {
		out = append(out, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: ops.GetSet()[k]},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD})
	}
	for _, k := range slices.Sorted(maps.Keys(ops.GetAdd())) {
		out = append(out, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: ops.GetAdd()[k]},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD})
	}
	return out
}

// faultConfig translates HTTPFaultInjection into the fault filter's
// per-route config; percentages default to 100 as in Istio.
func faultConfig(f *networking.HTTPFaultInjection) *faultv3.HTTPFault {
	out := &faultv3.HTTPFault{}
	if d := f.GetDelay(); d != nil && d.GetFixedDelay() != nil {
		out.Delay = &faultcommonv3.FaultDelay{
			FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: d.GetFixedDelay()},
			Percentage:         percentOf(d.GetPercentage(), d.GetPercent()),
		}
	}
	if a := f.GetAbort(); a != nil {
		ab := &faultv3.FaultAbort{Percentage: percentOf(a.GetPercentage(), 0)}
		switch e := a.GetErrorType().(type) {
		case *networking.HTTPFaultInjection_Abort_HttpStatus:
			ab.ErrorType = &faultv3.FaultAbort_HttpStatus{HttpStatus: uint32(e.HttpStatus)}
		case *networking.HTTPFaultInjection_Abort_GrpcStatus:
			if code, ok := grpcCodes[e.GrpcStatus]; ok {
				ab.ErrorType = &faultv3.FaultAbort_GrpcStatus{GrpcStatus: code}
			}
		}
		if ab.ErrorType != nil {
			out.Abort = ab
		}
	}
	if out.Delay == nil && out.Abort == nil {
		return nil
	}
	return out
}

var grpcCodes = map[string]uint32{"OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4,
	"NOT_FOUND": 5, "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9,
	"ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12, "INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15,
	"UNAUTHENTICATED": 16}

func percentOf(p *networking.Percent, legacy int32) *typev3.FractionalPercent {
	switch {
	case p != nil:
		return fraction(p.GetValue())
	case legacy > 0:
		return &typev3.FractionalPercent{Numerator: uint32(legacy), Denominator: typev3.FractionalPercent_HUNDRED}
	}
	return fraction(100)
}

func corsPolicy(c *networking.CorsPolicy) *corsv3.CorsPolicy {
	out := &corsv3.CorsPolicy{
		AllowMethods:     strings.Join(c.GetAllowMethods(), ","),
		AllowHeaders:     strings.Join(c.GetAllowHeaders(), ","),
		ExposeHeaders:    strings.Join(c.GetExposeHeaders(), ","),
		AllowCredentials: c.GetAllowCredentials(),
	}
	for _, o := range c.GetAllowOrigins() {
		if sm := stringMatcher(o); sm != nil {
			out.AllowOriginStringMatch = append(out.AllowOriginStringMatch, sm)
		}
	}
	for _, o := range c.GetAllowOrigin() {
		out.AllowOriginStringMatch = append(out.AllowOriginStringMatch, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: o}})
	}
	if ma := c.GetMaxAge(); ma != nil {
		out.MaxAge = strconv.FormatInt(int64(ma.AsDuration()/time.Second), 10)
	}
	if c.GetUnmatchedPreflights() == networking.CorsPolicy_IGNORE {
		out.ForwardNotMatchingPreflights = wrapperspb.Bool(false)
	}
	return out
}

package gatewayapi

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/bowline-mesh/bowline/internal/config"
)

// refResult is the first backend reference problem of a route, for its
// ResolvedRefs condition.
type refResult struct {
	reason gwv1.RouteConditionReason
	msg    string
}

func (r *refResult) add(reason gwv1.RouteConditionReason, msg string) {
	if r.reason == "" {
		r.reason, r.msg = reason, msg
	}
}

func (r refResult) condition(gen int64) metav1.Condition {
	if r.reason == "" {
		return cond(string(gwv1.RouteConditionResolvedRefs), true, string(gwv1.RouteReasonResolvedRefs), "All references resolved", gen)
	}
	return cond(string(gwv1.RouteConditionResolvedRefs), false, string(r.reason), r.msg, gen)
}

// convertHTTPRoute turns each rule and match of an HTTPRoute into an Istio
// HTTPRoute with one match, so that matches of every route can be ordered
// by the spec's precedence.
func (t *translator) convertHTTPRoute(o *config.Object, spec *gwv1.HTTPRouteSpec) ([]*networking.HTTPRoute, refResult) {
	var out []*networking.HTTPRoute
	var refs refResult
	for i, rule := range spec.Rules {
		base := &networking.HTTPRoute{Name: ruleName(o, rule.Name, i)}
		for _, f := range rule.Filters {
			switch f.Type {
			case gwv1.HTTPRouteFilterRequestHeaderModifier:
				headers(base).Request = headerOps(f.RequestHeaderModifier)
			case gwv1.HTTPRouteFilterResponseHeaderModifier:
				headers(base).Response = headerOps(f.ResponseHeaderModifier)
			case gwv1.HTTPRouteFilterRequestRedirect:
				base.Redirect = redirect(f.RequestRedirect)
			case gwv1.HTTPRouteFilterURLRewrite:
				base.Rewrite = rewrite(f.URLRewrite)
			case gwv1.HTTPRouteFilterRequestMirror:
				if m := t.mirror(o, f.RequestMirror, &refs); m != nil {
					base.Mirrors = append(base.Mirrors, m)
				}
			case gwv1.HTTPRouteFilterCORS:
				base.CorsPolicy = cors(f.CORS)
			case gwv1.HTTPRouteFilterExtensionRef:
				refs.add(gwv1.RouteReasonInvalidKind, fmt.Sprintf("rule %d: ExtensionRef filters are not supported", i))
				base.DirectResponse = &networking.HTTPDirectResponse{Status: 500}
			}
		}
		if rt := rule.Retry; rt != nil {
			retryOn := []string{"connect-failure", "refused-stream", "unavailable", "cancelled"}
			for _, c := range rt.Codes {
				retryOn = append(retryOn, strconv.Itoa(int(c)))
			}
			attempts := 2
			if rt.Attempts != nil {
				attempts = *rt.Attempts
			}
			base.Retries = &networking.HTTPRetry{Attempts: int32(attempts), RetryOn: strings.Join(retryOn, ",")}
			if attempts == 0 {
				base.Retries.RetryOn = ""
			}
			if d := duration(rt.Backoff); d != nil {
				base.Retries.Backoff = d
			}
		}
		if to := rule.Timeouts; to != nil {
			if d := duration(to.Request); d != nil && d.AsDuration() != 0 {
				base.Timeout = d
			}
			if d := duration(to.BackendRequest); d != nil && d.AsDuration() != 0 {
				if base.Retries != nil {
					base.Retries.PerTryTimeout = d
				} else if base.Timeout == nil {
					base.Timeout = d
				} else {
					base.Retries = &networking.HTTPRetry{Attempts: 1, PerTryTimeout: d, RetryOn: "connect-failure,refused-stream,unavailable,cancelled"}
				}
			}
		}
		if base.Redirect == nil && base.DirectResponse == nil {
			backends := make([]backend, len(rule.BackendRefs))
			for j, b := range rule.BackendRefs {
				backends[j] = backend{ref: b.BackendRef}
				for _, f := range b.Filters {
					switch f.Type {
					case gwv1.HTTPRouteFilterRequestHeaderModifier:
						backends[j].headers = orHeaders(backends[j].headers)
						backends[j].headers.Request = headerOps(f.RequestHeaderModifier)
					case gwv1.HTTPRouteFilterResponseHeaderModifier:
						backends[j].headers = orHeaders(backends[j].headers)
						backends[j].headers.Response = headerOps(f.ResponseHeaderModifier)
					}
				}
			}
			t.destinations(o, base, backends, &refs)
		}
		matches := rule.Matches
		if len(matches) == 0 {
			matches = []gwv1.HTTPRouteMatch{{}}
		}
		for _, m := range matches {
			r := cloneRoute(base)
			r.Match = []*networking.HTTPMatchRequest{httpMatch(m)}
			out = append(out, r)
		}
	}
	return out, refs
}

// backend is a backendRef with its per-backend header filters.
type backend struct {
	ref     gwv1.BackendRef
	headers *networking.Headers
}

// InvalidBackendHost stands for a backendRef that could not be resolved:
// no cluster has it, so its share of the traffic is answered 500 (the
// routes of Gateway API VirtualServices answer a missing cluster with 500).
const InvalidBackendHost = "invalid-backend.bowline.internal"

// destinations sets r's weighted destinations. Backends of weight 0 take
// no traffic; when no backend can take any, the rule answers 500 as the
// spec asks. An unresolvable backend keeps its share, answered 500, and is
// reported in refs.
func (t *translator) destinations(o *config.Object, r *networking.HTTPRoute, backends []backend, refs *refResult) {
	var out []*networking.HTTPRouteDestination
	valid := 0
	for _, b := range backends {
		w := int32(1)
		if b.ref.Weight != nil {
			w = *b.ref.Weight
		}
		dst, ok := t.destination(o, b.ref.BackendObjectReference, refs)
		if w == 0 {
			continue
		}
		if !ok {
			dst = &networking.Destination{Host: InvalidBackendHost}
		} else {
			valid++
		}
		out = append(out, &networking.HTTPRouteDestination{Destination: dst, Weight: w, Headers: b.headers})
	}
	if valid == 0 {
		r.DirectResponse = &networking.HTTPDirectResponse{Status: 500}
		return
	}
	if len(out) == 1 {
		out[0].Weight = 0
	}
	r.Route = out
}

// destination resolves one backend reference, checking ReferenceGrants
// for another namespace.
func (t *translator) destination(o *config.Object, b gwv1.BackendObjectReference, refs *refResult) (*networking.Destination, bool) {
	group, kind := "", "Service"
	if b.Group != nil {
		group = string(*b.Group)
	}
	if b.Kind != nil {
		kind = string(*b.Kind)
	}
	ns := o.Meta.Namespace
	if b.Namespace != nil {
		ns = string(*b.Namespace)
	}
	switch {
	case group == "" && kind == "Service", group == config.GroupNetworking && (kind == "Hostname" || kind == "ServiceEntry"):
	default:
		refs.add(gwv1.RouteReasonInvalidKind, fmt.Sprintf("backendRef kind %s/%s is not supported", group, kind))
		return nil, false
	}
	if ns != o.Meta.Namespace && !t.granted(o.Meta.Namespace, o.GVK.Kind, ns, group, kind, string(b.Name)) {
		refs.add(gwv1.RouteReasonRefNotPermitted, fmt.Sprintf("backendRef %s/%s is in another namespace and no ReferenceGrant there allows it", ns, b.Name))
		return nil, false
	}
	svc := t.lookupService(group, kind, ns, string(b.Name))
	if svc == nil {
		refs.add(gwv1.RouteReasonBackendNotFound, fmt.Sprintf("backend %s %s/%s not found", kind, ns, b.Name))
		return nil, false
	}
	d := &networking.Destination{Host: svc.Hostname}
	if b.Port != nil {
		if _, ok := svc.Port(uint32(*b.Port)); !ok && len(svc.Ports) > 0 { // no ports: not known (analyze of a Workload)
			refs.add(gwv1.RouteReasonBackendNotFound, fmt.Sprintf("backend %s %s/%s has no port %d", kind, ns, b.Name, *b.Port))
			return nil, false
		}
		d.Port = &networking.PortSelector{Number: uint32(*b.Port)}
	}
	return d, true
}

func (t *translator) mirror(o *config.Object, m *gwv1.HTTPRequestMirrorFilter, refs *refResult) *networking.HTTPMirrorPolicy {
	dst, ok := t.destination(o, m.BackendRef, refs)
	if !ok {
		return nil
	}
	p := &networking.HTTPMirrorPolicy{Destination: dst}
	switch {
	case m.Percent != nil:
		p.Percentage = &networking.Percent{Value: float64(*m.Percent)}
	case m.Fraction != nil:
		den := int32(100)
		if m.Fraction.Denominator != nil {
			den = *m.Fraction.Denominator
		}
		p.Percentage = &networking.Percent{Value: 100 * float64(m.Fraction.Numerator) / float64(den)}
	}
	return p
}

func ruleName(o *config.Object, name *gwv1.SectionName, i int) string {
	if name != nil {
		return o.Meta.Namespace + "." + o.Meta.Name + "." + string(*name)
	}
	return o.Meta.Namespace + "." + o.Meta.Name + "." + strconv.Itoa(i)
}

func headers(r *networking.HTTPRoute) *networking.Headers {
	r.Headers = orHeaders(r.Headers)
	return r.Headers
}

func orHeaders(h *networking.Headers) *networking.Headers {
	if h == nil {
		return &networking.Headers{}
	}
	return h
}

// headerOps maps a header filter: set overwrites, add appends, as in
// Istio's VirtualService headers.
func headerOps(f *gwv1.HTTPHeaderFilter) *networking.Headers_HeaderOperations {
	ops := &networking.Headers_HeaderOperations{Remove: slices.Clone(f.Remove)}
	for _, h := range f.Set {
		if ops.Set == nil {
			ops.Set = map[string]string{}
		}
		ops.Set[strings.ToLower(string(h.Name))] = h.Value
	}
	for _, h := range f.Add {
		if ops.Add == nil {
			ops.Add = map[string]string{}
		}
		ops.Add[strings.ToLower(string(h.Name))] = h.Value
	}
	return ops
}

func redirect(f *gwv1.HTTPRequestRedirectFilter) *networking.HTTPRedirect {
	r := &networking.HTTPRedirect{RedirectCode: 302}
	if f.StatusCode != nil {
		r.RedirectCode = uint32(*f.StatusCode)
	}
	if f.Hostname != nil {
		r.Authority = string(*f.Hostname)
	}
	if f.Scheme != nil {
		r.Scheme = *f.Scheme
	}
	switch {
	case f.Port != nil:
		r.RedirectPort = &networking.HTTPRedirect_Port{Port: uint32(*f.Port)}
	case f.Scheme != nil:
		// "When empty, ... the port is the default port for the scheme."
		r.RedirectPort = &networking.HTTPRedirect_DerivePort{DerivePort: networking.HTTPRedirect_FROM_PROTOCOL_DEFAULT}
	default:
		r.RedirectPort = &networking.HTTPRedirect_DerivePort{DerivePort: networking.HTTPRedirect_FROM_REQUEST_PORT}
	}
	if p := f.Path; p != nil {
		switch p.Type {
		case gwv1.FullPathHTTPPathModifier:
			r.Uri = *p.ReplaceFullPath
		case gwv1.PrefixMatchHTTPPathModifier:
			r.PrefixRewrite = *p.ReplacePrefixMatch
		}
	}
	return r
}

func rewrite(f *gwv1.HTTPURLRewriteFilter) *networking.HTTPRewrite {
	r := &networking.HTTPRewrite{}
	if f.Hostname != nil {
		r.Authority = string(*f.Hostname)
	}
	if p := f.Path; p != nil {
		switch p.Type {
		case gwv1.FullPathHTTPPathModifier:
			r.UriRegexRewrite = &networking.RegexRewrite{Match: "/.*", Rewrite: *p.ReplaceFullPath}
		case gwv1.PrefixMatchHTTPPathModifier:
			r.Uri = strings.TrimSuffix(*p.ReplacePrefixMatch, "/")
			if r.Uri == "" {
				r.Uri = "/" // removes the prefix (SemanticsAnnotation)
			}
		}
	}
	if r.Authority == "" && r.Uri == "" && r.UriRegexRewrite == nil {
		return nil
	}
	return r
}

func cors(f *gwv1.HTTPCORSFilter) *networking.CorsPolicy {
	p := &networking.CorsPolicy{}
	for _, o := range f.AllowOrigins {
		if o == "*" {
			p.AllowOrigins = append(p.AllowOrigins, &networking.StringMatch{MatchType: &networking.StringMatch_Regex{Regex: ".*"}})
			continue
		}
		if strings.Contains(string(o), "*") {
			// "https://*.example.com": the wildcard is a whole first label
			// and stands for one or more labels.
			re := strings.ReplaceAll(regexp.QuoteMeta(string(o)), `\*`, `[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)*`)
			p.AllowOrigins = append(p.AllowOrigins, &networking.StringMatch{MatchType: &networking.StringMatch_Regex{Regex: re}})
			continue
		}
		p.AllowOrigins = append(p.AllowOrigins, &networking.StringMatch{MatchType: &networking.StringMatch_Exact{Exact: string(o)}})
	}
	for _, m := range f.AllowMethods {
		p.AllowMethods = append(p.AllowMethods, string(m))
	}
	for _, h := range f.AllowHeaders {
		p.AllowHeaders = append(p.AllowHeaders, string(h))
	}
	for _, h := range f.ExposeHeaders {
		p.ExposeHeaders = append(p.ExposeHeaders, string(h))
	}
	if f.AllowCredentials != nil {
		p.AllowCredentials = wrapperspb.Bool(*f.AllowCredentials)
	}
	if f.MaxAge > 0 {
		p.MaxAge = durationpb.New(time.Duration(f.MaxAge) * time.Second)
	}
	return p
}

func duration(d *gwv1.Duration) *durationpb.Duration {
	if d == nil {
		return nil
	}
	v, err := time.ParseDuration(string(*d))
	if err != nil {
		return nil // validation rejects it first
	}
	return durationpb.New(v)
}

// httpMatch maps one match; an absent path is a PathPrefix "/" match.
func httpMatch(m gwv1.HTTPRouteMatch) *networking.HTTPMatchRequest {
	out := &networking.HTTPMatchRequest{}
	typ, val := gwv1.PathMatchPathPrefix, "/"
	if m.Path != nil {
		if m.Path.Type != nil {
			typ = *m.Path.Type
		}
		if m.Path.Value != nil {
			val = *m.Path.Value
		}
	}
	switch typ {
	case gwv1.PathMatchExact:
		out.Uri = &networking.StringMatch{MatchType: &networking.StringMatch_Exact{Exact: val}}
	case gwv1.PathMatchRegularExpression:
		out.Uri = &networking.StringMatch{MatchType: &networking.StringMatch_Regex{Regex: val}}
	default:
		if val != "/" {
			val = strings.TrimSuffix(val, "/")
		}
		out.Uri = &networking.StringMatch{MatchType: &networking.StringMatch_Prefix{Prefix: val}}
	}
	for _, h := range m.Headers {
		if out.Headers == nil {
			out.Headers = map[string]*networking.StringMatch{}
		}
		out.Headers[strings.ToLower(string(h.Name))] = stringMatch(h.Type != nil && *h.Type == gwv1.HeaderMatchRegularExpression, h.Value)
	}
	for _, q := range m.QueryParams {
		if out.QueryParams == nil {
			out.QueryParams = map[string]*networking.StringMatch{}
		}
		out.QueryParams[string(q.Name)] = stringMatch(q.Type != nil && *q.Type == gwv1.QueryParamMatchRegularExpression, q.Value)
	}
	if m.Method != nil {
		out.Method = &networking.StringMatch{MatchType: &networking.StringMatch_Exact{Exact: string(*m.Method)}}
	}
	return out
}

func stringMatch(regex bool, v string) *networking.StringMatch {
	if regex {
		return &networking.StringMatch{MatchType: &networking.StringMatch_Regex{Regex: v}}
	}
	return &networking.StringMatch{MatchType: &networking.StringMatch_Exact{Exact: v}}
}

// convertGRPCRoute maps a GRPCRoute: a method match is a path match on
// /<service>/<method>.
func (t *translator) convertGRPCRoute(o *config.Object, spec *gwv1.GRPCRouteSpec) ([]*networking.HTTPRoute, refResult) {
	var out []*networking.HTTPRoute
	var refs refResult
	for i, rule := range spec.Rules {
		base := &networking.HTTPRoute{Name: ruleName(o, rule.Name, i)}
		for _, f := range rule.Filters {
			switch f.Type {
			case gwv1.GRPCRouteFilterRequestHeaderModifier:
				headers(base).Request = headerOps(f.RequestHeaderModifier)
			case gwv1.GRPCRouteFilterResponseHeaderModifier:
				headers(base).Response = headerOps(f.ResponseHeaderModifier)
			case gwv1.GRPCRouteFilterRequestMirror:
				if m := t.mirror(o, f.RequestMirror, &refs); m != nil {
					base.Mirrors = append(base.Mirrors, m)
				}
			case gwv1.GRPCRouteFilterExtensionRef:
				refs.add(gwv1.RouteReasonInvalidKind, fmt.Sprintf("rule %d: ExtensionRef filters are not supported", i))
				base.DirectResponse = &networking.HTTPDirectResponse{Status: 500}
			}
		}
		if base.DirectResponse == nil {
			backends := make([]backend, len(rule.BackendRefs))
			for j, b := range rule.BackendRefs {
				backends[j] = backend{ref: b.BackendRef}
				for _, f := range b.Filters {
					switch f.Type {
					case gwv1.GRPCRouteFilterRequestHeaderModifier:
						backends[j].headers = orHeaders(backends[j].headers)
						backends[j].headers.Request = headerOps(f.RequestHeaderModifier)
					case gwv1.GRPCRouteFilterResponseHeaderModifier:
						backends[j].headers = orHeaders(backends[j].headers)
						backends[j].headers.Response = headerOps(f.ResponseHeaderModifier)
					}
				}
			}
			t.destinations(o, base, backends, &refs)
		}
		matches := rule.Matches
		if len(matches) == 0 {
			matches = []gwv1.GRPCRouteMatch{{}}
		}
		for _, m := range matches {
			r := cloneRoute(base)
			r.Match = []*networking.HTTPMatchRequest{grpcMatch(m)}
			out = append(out, r)
		}
	}
	return out, refs
}

func grpcMatch(m gwv1.GRPCRouteMatch) *networking.HTTPMatchRequest {
	out := &networking.HTTPMatchRequest{}
	if mm := m.Method; mm != nil {
		regex := mm.Type != nil && *mm.Type == gwv1.GRPCMethodMatchRegularExpression
		svc, method := "", ""
		if mm.Service != nil {
			svc = *mm.Service
		}
		if mm.Method != nil {
			method = *mm.Method
		}
		switch {
		case regex:
			if svc == "" {
				svc = "[^/]+"
			}
			if method == "" {
				method = ".+"
			}
			out.Uri = &networking.StringMatch{MatchType: &networking.StringMatch_Regex{Regex: "/" + svc + "/" + method}}
		case method == "":
			out.Uri = &networking.StringMatch{MatchType: &networking.StringMatch_Prefix{Prefix: "/" + svc + "/"}}
		case svc == "":
			out.Uri = &networking.StringMatch{MatchType: &networking.StringMatch_Regex{Regex: "/[^/]+/" + method}}
		default:
			out.Uri = &networking.StringMatch{MatchType: &networking.StringMatch_Exact{Exact: "/" + svc + "/" + method}}
		}
	}
	for _, h := range m.Headers {
		if out.Headers == nil {
			out.Headers = map[string]*networking.StringMatch{}
		}
		out.Headers[strings.ToLower(string(h.Name))] = stringMatch(h.Type != nil && *h.Type == gwv1.GRPCHeaderMatchRegularExpression, h.Value)
	}
	return out
}

package xdsconfig

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/bowline-mesh/bowline/internal/proxy/authz"
)

// UnmarshalRouteConfig checks a RouteConfiguration and converts it.
func UnmarshalRouteConfig(rc *routev3.RouteConfiguration) (*RouteConfig, error) {
	out, err := unmarshalRouteConfig(rc, "")
	if err != nil {
		return nil, fmt.Errorf("route configuration %q: %w", rc.GetName(), err)
	}
	return out, nil
}

func unmarshalRouteConfig(rc *routev3.RouteConfiguration, path string) (*RouteConfig, error) {
	if err := checkFields(rc, path, "name", "virtual_hosts", "request_headers_to_add", "request_headers_to_remove",
		"response_headers_to_add", "response_headers_to_remove", "validate_clusters", "internal_only_headers",
		"max_direct_response_body_size_bytes", "ignore_port_in_host_matching"); err != nil {
		return nil, err
	}
	out := &RouteConfig{Name: rc.GetName()}
	var err error
	if out.Headers, err = convertHeaderEdits(path, rc.GetRequestHeadersToAdd(), rc.GetRequestHeadersToRemove(),
		rc.GetResponseHeadersToAdd(), rc.GetResponseHeadersToRemove()); err != nil {
		return nil, err
	}
	seen := map[string]string{}
	for i, vh := range rc.GetVirtualHosts() {
		p := joinPath(path, fmt.Sprintf("virtual_hosts[%d]", i))
		v, err := unmarshalVirtualHost(vh, p)
		if err != nil {
			return nil, err
		}
		for _, d := range v.Domains {
			if other, ok := seen[d]; ok {
				return nil, fmt.Errorf("field %s.domains: domain %q also in virtual host %q", p, d, other)
			}
			seen[d] = v.Name
		}
		out.VirtualHosts = append(out.VirtualHosts, *v)
	}
	return out, nil
}

func unmarshalVirtualHost(vh *routev3.VirtualHost, path string) (*VirtualHost, error) {
	if err := checkFields(vh, path, "name", "domains", "routes", "request_headers_to_add", "request_headers_to_remove",
		"response_headers_to_add", "response_headers_to_remove", "retry_policy", "include_request_attempt_count",
		"include_attempt_count_in_response", "typed_per_filter_config", "cors", "require_tls", "rate_limits"); err != nil {
		return nil, err
	}
	if len(vh.GetDomains()) == 0 {
		return nil, fmt.Errorf("field %s.domains: empty", path)
	}
	out := &VirtualHost{Name: vh.GetName()}
	switch vh.GetRequireTls() {
	case routev3.VirtualHost_NONE:
	case routev3.VirtualHost_ALL:
		out.RequireTLS = true
	default:
		return nil, fmt.Errorf("field %s.require_tls: %v unsupported (NONE or ALL)", path, vh.GetRequireTls())
	}
	for j, d := range vh.GetDomains() {
		d = strings.ToLower(d)
		if d == "" || (strings.Count(d, "*") > 1) || (strings.Contains(d, "*") && d != "*" &&
			!strings.HasPrefix(d, "*") && !strings.HasSuffix(d, "*")) {
			return nil, fmt.Errorf("field %s.domains[%d]: invalid domain %q", path, j, d)
		}
		out.Domains = append(out.Domains, d)
	}
	var err error
	if out.Headers, err = convertHeaderEdits(path, vh.GetRequestHeadersToAdd(), vh.GetRequestHeadersToRemove(),
		vh.GetResponseHeadersToAdd(), vh.GetResponseHeadersToRemove()); err != nil {
		return nil, err
	}
	if rp := vh.GetRetryPolicy(); rp != nil {
		if out.Retry, err = unmarshalRetry(rp, path+".retry_policy"); err != nil {
			return nil, err
		}
	}
	if out.RateLimits, err = unmarshalRateLimits(vh.GetRateLimits(), path+".rate_limits"); err != nil {
		return nil, err
	}
	if c := vh.GetCors(); c != nil {
		if out.CORS, err = unmarshalLegacyCORS(c, path+".cors"); err != nil {
			return nil, err
		}
	}
	for k, v := range vh.GetTypedPerFilterConfig() {
		p := fmt.Sprintf("%s.typed_per_filter_config[%s]", path, k)
		switch {
		case k == filterCORS:
			if out.CORS, err = unmarshalCORSAny(v, p); err != nil {
				return nil, err
			}
		default:
			cfg, err := unmarshalPerFilter(k, v, p)
			if err != nil {
				return nil, err
			}
			if out.PerFilter == nil {
				out.PerFilter = map[string]any{}
			}
			out.PerFilter[k] = cfg
		}
	}
	for i, r := range vh.GetRoutes() {
		rt, err := unmarshalRoute(r, fmt.Sprintf("%s.routes[%d]", path, i))
		if err != nil {
			return nil, err
		}
		if rt.Action != nil && rt.Action.Retry == nil {
			rt.Action.Retry = out.Retry
		}
		if rt.CORS == nil {
			rt.CORS = out.CORS
		}
		for k, v := range out.PerFilter {
			if _, ok := rt.PerFilter[k]; !ok {
				if rt.PerFilter == nil {
					rt.PerFilter = map[string]any{}
				}
				rt.PerFilter[k] = v
			}
		}
		out.Routes = append(out.Routes, *rt)
	}
	return out, nil
}

func unmarshalRoute(r *routev3.Route, path string) (*Route, error) {
	if err := checkFields(r, path, "name", "match", "route", "redirect", "direct_response", "metadata", "decorator",
		"typed_per_filter_config", "request_headers_to_add", "request_headers_to_remove",
		"response_headers_to_add", "response_headers_to_remove"); err != nil {
		return nil, err
	}
	out := &Route{Name: r.GetName(), Operation: r.GetDecorator().GetOperation()}
	if d := r.GetDecorator(); d != nil {
		if err := checkFields(d, path+".decorator", "operation", "propagate"); err != nil {
			return nil, err
		}
	}
	m, err := unmarshalRouteMatch(r.GetMatch(), path+".match")
	if err != nil {
		return nil, err
	}
	out.Match = *m
	if out.Headers, err = convertHeaderEdits(path, r.GetRequestHeadersToAdd(), r.GetRequestHeadersToRemove(),
		r.GetResponseHeadersToAdd(), r.GetResponseHeadersToRemove()); err != nil {
		return nil, err
	}
	for k, v := range r.GetTypedPerFilterConfig() {
		p := fmt.Sprintf("%s.typed_per_filter_config[%s]", path, k)
		switch {
		case v.GetTypeUrl() == typeFault:
			if out.Fault, err = unmarshalFaultAny(v, p); err != nil {
				return nil, err
			}
		case k == filterCORS:
			if out.CORS, err = unmarshalCORSAny(v, p); err != nil {
				return nil, err
			}
		default:
			cfg, err := unmarshalPerFilter(k, v, p)
			if err != nil {
				return nil, err
			}
			if out.PerFilter == nil {
				out.PerFilter = map[string]any{}
			}
			out.PerFilter[k] = cfg
		}
	}
	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		if out.Action, err = unmarshalRouteAction(a.Route, path+".route"); err != nil {
			return nil, err
		}
		if c := a.Route.GetCors(); c != nil && out.CORS == nil {
			if out.CORS, err = unmarshalLegacyCORS(c, path+".route.cors"); err != nil {
				return nil, err
			}
		}
	case *routev3.Route_Redirect:
		if out.Redirect, err = unmarshalRedirect(a.Redirect, path+".redirect"); err != nil {
			return nil, err
		}
	case *routev3.Route_DirectResponse:
		d := a.DirectResponse
		if err := checkFields(d, path+".direct_response", "status", "body"); err != nil {
			return nil, err
		}
		if d.GetStatus() < 200 || d.GetStatus() > 599 {
			return nil, fmt.Errorf("field %s.direct_response.status: %d out of range", path, d.GetStatus())
		}
		if b := d.GetBody(); b != nil {
			if err := checkFields(b, path+".direct_response.body", "inline_string", "inline_bytes"); err != nil {
				return nil, err
			}
		}
		body := d.GetBody().GetInlineString()
		if bb := d.GetBody().GetInlineBytes(); len(bb) > 0 {
			body = string(bb)
		}
		out.Direct = &DirectResponse{Status: int(d.GetStatus()), Body: body}
	default:
		return nil, fmt.Errorf("field %s.action: route, redirect or direct_response required", path)
	}
	return out, nil
}

func unmarshalRouteMatch(m *routev3.RouteMatch, path string) (*RouteMatch, error) {
	if m == nil {
		return nil, fmt.Errorf("field %s: missing", path)
	}
	if err := checkFields(m, path, "prefix", "path", "safe_regex", "path_separated_prefix", "case_sensitive",
		"headers", "query_parameters", "grpc", "dynamic_metadata"); err != nil {
		return nil, err
	}
	out := &RouteMatch{CaseSensitive: true, GRPC: m.GetGrpc() != nil}
	var err error
	if cs := m.GetCaseSensitive(); cs != nil {
		out.CaseSensitive = cs.GetValue()
	}
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		out.Kind, out.Path = PathPrefix, p.Prefix
	case *routev3.RouteMatch_Path:
		out.Kind, out.Path = PathExact, p.Path
	case *routev3.RouteMatch_PathSeparatedPrefix:
		if strings.ContainsAny(p.PathSeparatedPrefix, "?#") || strings.HasSuffix(p.PathSeparatedPrefix, "/") {
			return nil, fmt.Errorf("field %s.path_separated_prefix: %q must not end in / or hold ? or #", path, p.PathSeparatedPrefix)
		}
		out.Kind, out.Path = PathSeparatedPrefix, p.PathSeparatedPrefix
	case *routev3.RouteMatch_SafeRegex:
		re, err := compileRegex(p.SafeRegex, path+".safe_regex")
		if err != nil {
			return nil, err
		}
		out.Kind, out.Regex = PathRegex, re
	default:
		return nil, fmt.Errorf("field %s.path_specifier: missing", path)
	}
	if !out.CaseSensitive {
		out.Path = strings.ToLower(out.Path)
		if out.Regex != nil {
			out.Regex = regexp.MustCompile("(?i)" + out.Regex.String())
		}
	}
	for i, h := range m.GetHeaders() {
		hm, err := unmarshalHeaderMatcher(h, fmt.Sprintf("%s.headers[%d]", path, i))
		if err != nil {
			return nil, err
		}
		out.Headers = append(out.Headers, *hm)
	}
	for i, dm := range m.GetDynamicMetadata() {
		mm, err := authz.CompileMetadataMatcher(dm, fmt.Sprintf("%s.dynamic_metadata[%d]", path, i))
		if err != nil {
			return nil, err
		}
		out.Metadata = append(out.Metadata, mm)
	}
	for i, q := range m.GetQueryParameters() {
		p := fmt.Sprintf("%s.query_parameters[%d]", path, i)
		if err := checkFields(q, p, "name", "string_match", "present_match"); err != nil {
			return nil, err
		}
		qm := QueryMatcher{Name: q.GetName()}
		if sm := q.GetStringMatch(); sm != nil {
			if qm.String, err = convertStringMatcher(sm, p+".string_match"); err != nil {
				return nil, err
			}
		}
		out.Query = append(out.Query, qm)
	}
	return out, nil
}

func unmarshalHeaderMatcher(h *routev3.HeaderMatcher, path string) (*HeaderMatcher, error) {
	if err := checkFields(h, path, "name", "exact_match", "safe_regex_match", "present_match", "prefix_match",
		"suffix_match", "contains_match", "string_match", "invert_match", "treat_missing_header_as_empty"); err != nil {
		return nil, err
	}
	out := &HeaderMatcher{Name: strings.ToLower(h.GetName()), Invert: h.GetInvertMatch(),
		MissingAsEmpty: h.GetTreatMissingHeaderAsEmpty()}
	if out.Name == "" {
		return nil, fmt.Errorf("field %s.name: empty", path)
	}
	var err error
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_ExactMatch:
		out.String = &StringMatcher{Kind: MatchExact, Value: s.ExactMatch}
	case *routev3.HeaderMatcher_PrefixMatch:
		out.String = &StringMatcher{Kind: MatchPrefix, Value: s.PrefixMatch}
	case *routev3.HeaderMatcher_SuffixMatch:
		out.String = &StringMatcher{Kind: MatchSuffix, Value: s.SuffixMatch}
	case *routev3.HeaderMatcher_ContainsMatch:
		out.String = &StringMatcher{Kind: MatchContains, Value: s.ContainsMatch}
	case *routev3.HeaderMatcher_SafeRegexMatch:
		re, err := compileRegex(s.SafeRegexMatch, path+".safe_regex_match")
		if err != nil {
			return nil, err
		}
		out.String = &StringMatcher{Kind: MatchRegex, Regex: re}
	case *routev3.HeaderMatcher_PresentMatch:
		p := s.PresentMatch
		out.Present = &p
	case *routev3.HeaderMatcher_StringMatch:
		if out.String, err = convertStringMatcher(s.StringMatch, path+".string_match"); err != nil {
			return nil, err
		}
	default:
		t := true
		out.Present = &t
	}
	return out, nil
}

func unmarshalRouteAction(a *routev3.RouteAction, path string) (*RouteAction, error) {
	if err := checkFields(a, path, "cluster", "weighted_clusters", "timeout", "retry_policy", "prefix_rewrite",
		"regex_rewrite", "host_rewrite_literal", "request_mirror_policies", "hash_policy", "max_stream_duration",
		"max_grpc_timeout", "cluster_not_found_response_code", "idle_timeout", "cors", "rate_limits", "include_vh_rate_limits"); err != nil {
		return nil, err
	}
	out := &RouteAction{Timeout: a.GetTimeout().AsDuration(), PrefixRewrite: a.GetPrefixRewrite(),
		HasPrefixRewrite: a.GetPrefixRewrite() != "", HostRewrite: a.GetHostRewriteLiteral(), ClusterNotFoundStatus: 503,
		IncludeVHRateLimits: a.GetIncludeVhRateLimits().GetValue()}
	switch c := a.GetClusterNotFoundResponseCode(); c {
	case routev3.RouteAction_SERVICE_UNAVAILABLE:
	case routev3.RouteAction_NOT_FOUND:
		out.ClusterNotFoundStatus = 404
	case routev3.RouteAction_INTERNAL_SERVER_ERROR:
		out.ClusterNotFoundStatus = 500
	default:
		return nil, fmt.Errorf("field %s.cluster_not_found_response_code: unknown value %d", path, c)
	}
	rls, err := unmarshalRateLimits(a.GetRateLimits(), path+".rate_limits")
	if err != nil {
		return nil, err
	}
	out.RateLimits = rls
	switch cs := a.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		if cs.Cluster == "" {
			return nil, fmt.Errorf("field %s.cluster: empty", path)
		}
		out.Clusters = []WeightedCluster{{Name: cs.Cluster, Weight: 1}}
	case *routev3.RouteAction_WeightedClusters:
		wp := path + ".weighted_clusters"
		if err := checkFields(cs.WeightedClusters, wp, "clusters", "total_weight"); err != nil {
			return nil, err
		}
		for i, c := range cs.WeightedClusters.GetClusters() {
			p := fmt.Sprintf("%s.clusters[%d]", wp, i)
			if err := checkFields(c, p, "name", "weight", "request_headers_to_add", "request_headers_to_remove",
				"response_headers_to_add", "response_headers_to_remove"); err != nil {
				return nil, err
			}
			if c.GetName() == "" {
				return nil, fmt.Errorf("field %s.name: empty", p)
			}
			h, err := convertHeaderEdits(p, c.GetRequestHeadersToAdd(), c.GetRequestHeadersToRemove(),
				c.GetResponseHeadersToAdd(), c.GetResponseHeadersToRemove())
			if err != nil {
				return nil, err
			}
			out.Clusters = append(out.Clusters, WeightedCluster{Name: c.GetName(), Weight: c.GetWeight().GetValue(), Headers: h})
		}
	default:
		return nil, fmt.Errorf("field %s.cluster_specifier: cluster or weighted_clusters required", path)
	}
	out.TotalWeight = totalWeight(out.Clusters)
	if out.TotalWeight == 0 {
		return nil, fmt.Errorf("field %s.weighted_clusters: total weight is 0", path)
	}
	if rr := a.GetRegexRewrite(); rr != nil {
		if _, err := compileRegex(rr.GetPattern(), path+".regex_rewrite.pattern"); err != nil {
			return nil, err
		}
		// Envoy's regex rewrite replaces every match within the path, so the
		// pattern is not anchored.
		out.RegexRewrite = regexp.MustCompile(rr.GetPattern().GetRegex())
		out.RegexSubstitution = backrefs.ReplaceAllString(rr.GetSubstitution(), "$${$1}")
	}
	if rp := a.GetRetryPolicy(); rp != nil {
		r, err := unmarshalRetry(rp, path+".retry_policy")
		if err != nil {
			return nil, err
		}
		out.Retry = r
	}
	for i, m := range a.GetRequestMirrorPolicies() {
		p := fmt.Sprintf("%s.request_mirror_policies[%d]", path, i)
		if err := checkFields(m, p, "cluster", "runtime_fraction", "trace_sampled"); err != nil {
			return nil, err
		}
		if m.GetCluster() == "" {
			return nil, fmt.Errorf("field %s.cluster: empty", p)
		}
		pm := uint32(1_000_000)
		if rf := m.GetRuntimeFraction(); rf != nil {
			pm = fractionPerMillion(rf.GetDefaultValue())
		}
		out.Mirrors = append(out.Mirrors, Mirror{Cluster: m.GetCluster(), PerMillion: pm})
	}
	for i, h := range a.GetHashPolicy() {
		hp, err := unmarshalHashPolicy(h, fmt.Sprintf("%s.hash_policy[%d]", path, i))
		if err != nil {
			return nil, err
		}
		out.Hash = append(out.Hash, *hp)
	}
	return out, nil
}

func unmarshalHashPolicy(h *routev3.RouteAction_HashPolicy, p string) (*HashPolicy, error) {
	if err := checkFields(h, p, "header", "cookie", "connection_properties", "query_parameter", "terminal"); err != nil {
		return nil, err
	}
	out := &HashPolicy{Terminal: h.GetTerminal()}
	switch s := h.GetPolicySpecifier().(type) {
	case *routev3.RouteAction_HashPolicy_Header_:
		if err := checkFields(s.Header, p+".header", "header_name"); err != nil {
			return nil, err
		}
		out.Kind, out.Name = HashHeader, strings.ToLower(s.Header.GetHeaderName())
	case *routev3.RouteAction_HashPolicy_Cookie_:
		if err := checkFields(s.Cookie, p+".cookie", "name", "ttl", "path"); err != nil {
			return nil, err
		}
		out.Kind, out.Name, out.CookiePath = HashCookie, s.Cookie.GetName(), s.Cookie.GetPath()
		if ttl := s.Cookie.GetTtl(); ttl != nil {
			out.CookieTTL, out.HasCookieTTL = ttl.AsDuration(), true
		}
	case *routev3.RouteAction_HashPolicy_ConnectionProperties_:
		if !s.ConnectionProperties.GetSourceIp() {
			return nil, fmt.Errorf("field %s.connection_properties.source_ip: must be true", p)
		}
		out.Kind = HashSourceIP
	case *routev3.RouteAction_HashPolicy_QueryParameter_:
		out.Kind, out.Name = HashQueryParameter, s.QueryParameter.GetName()
	default:
		return nil, fmt.Errorf("field %s.policy_specifier: missing", p)
	}
	if out.Kind != HashSourceIP && out.Name == "" {
		return nil, fmt.Errorf("field %s: empty name", p)
	}
	return out, nil
}

var backrefs = regexp.MustCompile(`\\(\d)`)

func unmarshalRetry(rp *routev3.RetryPolicy, path string) (*RetryPolicy, error) {
	if err := checkFields(rp, path, "retry_on", "num_retries", "per_try_timeout", "retry_back_off",
		"retriable_status_codes", "retry_host_predicate", "host_selection_retry_max_attempts"); err != nil {
		return nil, err
	}
	out := &RetryPolicy{NumRetries: 1, PerTryTimeout: rp.GetPerTryTimeout().AsDuration(),
		BaseInterval: 25 * time.Millisecond, StatusCodes: rp.GetRetriableStatusCodes()}
	if n := rp.GetNumRetries(); n != nil {
		out.NumRetries = n.GetValue()
	}
	for _, on := range strings.Split(rp.GetRetryOn(), ",") {
		switch strings.TrimSpace(on) {
		case "":
		case "5xx":
			out.On |= Retry5xx
		case "gateway-error":
			out.On |= RetryGatewayError
		case "connect-failure":
			out.On |= RetryConnectFailure
		case "refused-stream":
			out.On |= RetryRefusedStream
		case "retriable-4xx":
			out.On |= RetryRetriable4xx
		case "reset":
			out.On |= RetryReset
		case "retriable-status-codes":
			out.On |= RetryRetriableStatusCodes
		case "cancelled":
			out.On |= RetryCancelled
		case "deadline-exceeded":
			out.On |= RetryDeadlineExceeded
		case "internal":
			out.On |= RetryInternal
		case "resource-exhausted":
			out.On |= RetryResourceExhausted
		case "unavailable":
			out.On |= RetryUnavailable
		default:
			return nil, fmt.Errorf("field %s.retry_on: condition %q unsupported", path, on)
		}
	}
	if b := rp.GetRetryBackOff(); b != nil {
		if d := b.GetBaseInterval().AsDuration(); d > 0 {
			out.BaseInterval = d
		}
		out.MaxInterval = b.GetMaxInterval().AsDuration()
	}
	if out.MaxInterval == 0 {
		out.MaxInterval = 10 * out.BaseInterval
	}
	for i, p := range rp.GetRetryHostPredicate() {
		if p.GetName() != "envoy.retry_host_predicates.previous_hosts" {
			return nil, fmt.Errorf("field %s.retry_host_predicate[%d]: predicate %q unsupported", path, i, p.GetName())
		}
		out.OtherHosts = true
	}
	return out, nil
}

func unmarshalRedirect(r *routev3.RedirectAction, path string) (*Redirect, error) {
	if err := checkFields(r, path, "https_redirect", "scheme_redirect", "host_redirect", "port_redirect",
		"path_redirect", "prefix_rewrite", "response_code", "strip_query"); err != nil {
		return nil, err
	}
	codes := map[routev3.RedirectAction_RedirectResponseCode]int{
		routev3.RedirectAction_MOVED_PERMANENTLY: 301, routev3.RedirectAction_FOUND: 302,
		routev3.RedirectAction_SEE_OTHER: 303, routev3.RedirectAction_TEMPORARY_REDIRECT: 307,
		routev3.RedirectAction_PERMANENT_REDIRECT: 308,
	}
	code, ok := codes[r.GetResponseCode()]
	if !ok {
		return nil, fmt.Errorf("field %s.response_code: %v unsupported", path, r.GetResponseCode())
	}
	out := &Redirect{Host: r.GetHostRedirect(), Port: r.GetPortRedirect(), Code: code, StripQuery: r.GetStripQuery(),
		Scheme: r.GetSchemeRedirect(), Path: r.GetPathRedirect()}
	if r.GetHttpsRedirect() {
		out.Scheme = "https"
	}
	if pr, ok := r.GetPathRewriteSpecifier().(*routev3.RedirectAction_PrefixRewrite); ok {
		out.PrefixRewrite, out.HasPrefixRewrite = pr.PrefixRewrite, true
	}
	return out, nil
}

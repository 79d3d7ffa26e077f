package validation

import (
	"regexp"
	"slices"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/bowline-mesh/bowline/internal/config"
)

var httpMethods = []gwv1.HTTPMethod{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

func validateHTTPRoute(obj *config.Object) []config.FieldError {
	spec := obj.Spec.(*gwv1.HTTPRouteSpec)
	var f fieldErrors
	parentRefsProblems(&f, spec.ParentRefs)
	routeHostnamesProblems(&f, spec.Hostnames)
	if len(spec.Rules) > 16 {
		f.errorf("spec.rules", "at most 16 rules are allowed, got %d", len(spec.Rules))
	}
	total := 0
	names := map[gwv1.SectionName]bool{}
	for i, r := range spec.Rules {
		p := indexPath("spec.rules", i)
		ruleNameProblems(&f, p, r.Name, names)
		total += len(r.Matches)
		if len(r.Matches) > 64 {
			f.errorf(fieldPath(p, "matches"), "at most 64 matches are allowed")
		}
		for j, m := range r.Matches {
			gwHTTPMatchProblems(&f, indexPath(fieldPath(p, "matches"), j), m)
		}
		httpFiltersProblems(&f, fieldPath(p, "filters"), r.Filters, r.Matches, false)
		hasRedirect := slices.ContainsFunc(r.Filters, func(fl gwv1.HTTPRouteFilter) bool { return fl.Type == gwv1.HTTPRouteFilterRequestRedirect })
		if hasRedirect && len(r.BackendRefs) > 0 {
			f.errorf(p, "RequestRedirect filter must not be used together with backendRefs")
		}
		if len(r.BackendRefs) > 16 {
			f.errorf(fieldPath(p, "backendRefs"), "at most 16 backends are allowed")
		}
		for j, b := range r.BackendRefs {
			bp := indexPath(fieldPath(p, "backendRefs"), j)
			backendRefProblems(&f, bp, b.BackendObjectReference)
			weightProblems(&f, bp, b.Weight)
			httpFiltersProblems(&f, fieldPath(bp, "filters"), b.Filters, r.Matches, true)
		}
		if t := r.Timeouts; t != nil {
			tp := fieldPath(p, "timeouts")
			req, okReq := gwDurationProblems(&f, fieldPath(tp, "request"), t.Request)
			be, okBe := gwDurationProblems(&f, fieldPath(tp, "backendRequest"), t.BackendRequest)
			if okReq && okBe && req != 0 && be > req {
				f.errorf(fieldPath(tp, "backendRequest"), "backendRequest timeout cannot be longer than request timeout")
			}
		}
		if rt := r.Retry; rt != nil {
			rp := fieldPath(p, "retry")
			for j, c := range rt.Codes {
				if c < 400 || c > 599 {
					f.errorf(indexPath(fieldPath(rp, "codes"), j), "must be between 400 and 599")
				}
			}
			if rt.Attempts != nil && *rt.Attempts < 0 {
				f.errorf(fieldPath(rp, "attempts"), "must be at least 0")
			}
			gwDurationProblems(&f, fieldPath(rp, "backoff"), rt.Backoff)
		}
	}
	if total > 128 {
		f.errorf("spec.rules", "While 16 rules and 64 matches per rule are allowed, the total number of matches across all rules in a route must be less than 128")
	}
	return f.list
}

func ruleNameProblems(f *fieldErrors, p string, name *gwv1.SectionName, names map[gwv1.SectionName]bool) {
	if name == nil {
		return
	}
	if !gwSectionNameRE.MatchString(string(*name)) {
		f.errorf(fieldPath(p, "name"), "%q is not a valid section name", *name)
	}
	if names[*name] {
		f.errorf(fieldPath(p, "name"), "Rule name must be unique within the route")
	}
	names[*name] = true
}

func gwHTTPMatchProblems(f *fieldErrors, p string, m gwv1.HTTPRouteMatch) {
	if pm := m.Path; pm != nil {
		pp := fieldPath(p, "path")
		typ := gwv1.PathMatchPathPrefix
		if pm.Type != nil {
			typ = *pm.Type
		}
		val := "/"
		if pm.Value != nil {
			val = *pm.Value
		}
		if len(val) > 1024 {
			f.errorf(fieldPath(pp, "value"), "must be at most 1024 characters")
		}
		switch typ {
		case gwv1.PathMatchExact, gwv1.PathMatchPathPrefix:
			vp := fieldPath(pp, "value")
			switch {
			case !strings.HasPrefix(val, "/"):
				f.errorf(vp, "value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']")
			case !gwPathCharsRE.MatchString(val):
				f.errorf(vp, "must only contain valid characters (matching ^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%%][0-9a-fA-F]{2})+$) for types ['Exact', 'PathPrefix']")
			default:
				for _, bad := range []string{"//", "/./", "/../", "%2f", "%2F", "#"} {
					if strings.Contains(val, bad) {
						f.errorf(vp, "must not contain '%s' when type one of ['Exact', 'PathPrefix']", bad)
					}
				}
				for _, bad := range []string{"/..", "/."} {
					if strings.HasSuffix(val, bad) {
						f.errorf(vp, "must not end with '%s' when type one of ['Exact', 'PathPrefix']", bad)
						break
					}
				}
			}
		case gwv1.PathMatchRegularExpression:
			if _, err := regexp.Compile(val); err != nil {
				f.errorf(fieldPath(pp, "value"), "invalid regular expression: %v", err)
			}
		default:
			f.errorf(fieldPath(pp, "type"), "type must be one of ['Exact', 'PathPrefix', 'RegularExpression']")
		}
	}
	if len(m.Headers) > 16 {
		f.errorf(fieldPath(p, "headers"), "at most 16 header matches are allowed")
	}
	seen := map[string]bool{}
	for i, h := range m.Headers {
		hp := indexPath(fieldPath(p, "headers"), i)
		stringMatchRuleProblems(f, hp, string(h.Name), derefOr(h.Type, "Exact"), h.Value)
		if k := strings.ToLower(string(h.Name)); seen[k] {
			f.errorf(fieldPath(hp, "name"), "header %q is matched twice (names are case-insensitive)", h.Name)
		} else {
			seen[k] = true
		}
	}
	seen = map[string]bool{}
	for i, q := range m.QueryParams {
		qp := indexPath(fieldPath(p, "queryParams"), i)
		stringMatchRuleProblems(f, qp, string(q.Name), derefOr(q.Type, "Exact"), q.Value)
		if seen[string(q.Name)] {
			f.errorf(fieldPath(qp, "name"), "query parameter %q is matched twice", q.Name)
		}
		seen[string(q.Name)] = true
	}
	if m.Method != nil && !slices.Contains(httpMethods, *m.Method) {
		f.errorf(fieldPath(p, "method"), "unknown value %q (allowed: GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH)", *m.Method)
	}
}

// stringMatchRuleProblems checks a header or query parameter match.
func stringMatchRuleProblems(f *fieldErrors, p, name, typ, value string) {
	if name == "" {
		f.errorf(fieldPath(p, "name"), "required")
	} else if !gwHeaderNameRE.MatchString(name) || len(name) > 256 {
		f.errorf(fieldPath(p, "name"), "%q is not a valid name", name)
	}
	if len(value) > 4096 {
		f.errorf(fieldPath(p, "value"), "must be at most 4096 characters")
	}
	switch typ {
	case "Exact":
		if value == "" {
			f.errorf(fieldPath(p, "value"), "required (at least 1 character)")
		}
	case "RegularExpression":
		if _, err := regexp.Compile(value); err != nil {
			f.errorf(fieldPath(p, "value"), "invalid regular expression: %v", err)
		}
	default:
		f.errorf(fieldPath(p, "type"), "unknown value %q (allowed: Exact, RegularExpression)", typ)
	}
}

// httpFiltersProblems checks the filters of a rule (or, inBackend, of one
// of its backendRefs): the member for the type is set and no other, the
// filters that may appear once do, and path modifiers agree with the
// rule's matches.
func httpFiltersProblems(f *fieldErrors, p string, filters []gwv1.HTTPRouteFilter, matches []gwv1.HTTPRouteMatch, inBackend bool) {
	if len(filters) > 16 {
		f.errorf(p, "at most 16 filters are allowed")
	}
	count := map[gwv1.HTTPRouteFilterType]int{}
	for i, fl := range filters {
		fp := indexPath(p, i)
		count[fl.Type]++
		members := []struct {
			typ   gwv1.HTTPRouteFilterType
			field string
			set   bool
		}{
			{gwv1.HTTPRouteFilterRequestHeaderModifier, "requestHeaderModifier", fl.RequestHeaderModifier != nil},
			{gwv1.HTTPRouteFilterResponseHeaderModifier, "responseHeaderModifier", fl.ResponseHeaderModifier != nil},
			{gwv1.HTTPRouteFilterRequestMirror, "requestMirror", fl.RequestMirror != nil},
			{gwv1.HTTPRouteFilterRequestRedirect, "requestRedirect", fl.RequestRedirect != nil},
			{gwv1.HTTPRouteFilterURLRewrite, "urlRewrite", fl.URLRewrite != nil},
			{gwv1.HTTPRouteFilterCORS, "cors", fl.CORS != nil},
			{gwv1.HTTPRouteFilterExternalAuth, "externalAuth", fl.ExternalAuth != nil},
			{gwv1.HTTPRouteFilterExtensionRef, "extensionRef", fl.ExtensionRef != nil},
		}
		known := false
		for _, m := range members {
			switch {
			case m.typ == fl.Type:
				known = true
				if !m.set {
					f.errorf(fieldPath(fp, m.field), "filter.%s must be specified for %s filter.type", m.field, m.typ)
				}
			case m.set:
				f.errorf(fieldPath(fp, m.field), "filter.%s must be nil if the filter.type is not %s", m.field, m.typ)
			}
		}
		if !known {
			f.errorf(fieldPath(fp, "type"), "unknown value %s (allowed: RequestHeaderModifier, ResponseHeaderModifier, RequestMirror, RequestRedirect, URLRewrite, CORS, ExtensionRef)", describe(fl.Type))
			continue
		}
		switch fl.Type {
		case gwv1.HTTPRouteFilterRequestHeaderModifier:
			if fl.RequestHeaderModifier != nil {
				headerFilterProblems(f, fieldPath(fp, "requestHeaderModifier"), fl.RequestHeaderModifier)
			}
		case gwv1.HTTPRouteFilterResponseHeaderModifier:
			if fl.ResponseHeaderModifier != nil {
				headerFilterProblems(f, fieldPath(fp, "responseHeaderModifier"), fl.ResponseHeaderModifier)
			}
		case gwv1.HTTPRouteFilterRequestMirror:
			if fl.RequestMirror != nil {
				mirrorProblems(f, fieldPath(fp, "requestMirror"), fl.RequestMirror)
			}
		case gwv1.HTTPRouteFilterRequestRedirect:
			if r := fl.RequestRedirect; r != nil {
				rp := fieldPath(fp, "requestRedirect")
				if r.Scheme != nil && *r.Scheme != "http" && *r.Scheme != "https" {
					f.errorf(fieldPath(rp, "scheme"), "unknown value %q (allowed: http, https)", *r.Scheme)
				}
				if r.Hostname != nil {
					gwPreciseHostnameProblems(f, fieldPath(rp, "hostname"), *r.Hostname)
				}
				if r.Port != nil && (*r.Port < 1 || *r.Port > 65535) {
					f.errorf(fieldPath(rp, "port"), "must be between 1 and 65535")
				}
				if r.StatusCode != nil && !slices.Contains([]int{301, 302, 303, 307, 308}, *r.StatusCode) {
					f.errorf(fieldPath(rp, "statusCode"), "unknown value %d (allowed: 301, 302, 303, 307, 308)", *r.StatusCode)
				}
				pathModifierProblems(f, fieldPath(rp, "path"), r.Path, matches, "RequestRedirect", inBackend)
			}
		case gwv1.HTTPRouteFilterURLRewrite:
			if r := fl.URLRewrite; r != nil {
				rp := fieldPath(fp, "urlRewrite")
				if r.Hostname != nil {
					gwPreciseHostnameProblems(f, fieldPath(rp, "hostname"), *r.Hostname)
				}
				pathModifierProblems(f, fieldPath(rp, "path"), r.Path, matches, "URLRewrite", inBackend)
			}
		case gwv1.HTTPRouteFilterCORS:
			if c := fl.CORS; c != nil {
				gwCORSProblems(f, fieldPath(fp, "cors"), c)
			}
		case gwv1.HTTPRouteFilterExternalAuth:
			f.errorf(fieldPath(fp, "type"), "ExternalAuth filters are not supported by Bowline")
		}
	}
	for _, t := range []gwv1.HTTPRouteFilterType{gwv1.HTTPRouteFilterRequestHeaderModifier, gwv1.HTTPRouteFilterResponseHeaderModifier,
		gwv1.HTTPRouteFilterRequestRedirect, gwv1.HTTPRouteFilterURLRewrite, gwv1.HTTPRouteFilterCORS} {
		if count[t] > 1 {
			f.errorf(p, "%s filter cannot be repeated", t)
		}
	}
	if count[gwv1.HTTPRouteFilterRequestRedirect] > 0 && count[gwv1.HTTPRouteFilterURLRewrite] > 0 {
		f.errorf(p, "May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both")
	}
}

func pathModifierProblems(f *fieldErrors, p string, m *gwv1.HTTPPathModifier, matches []gwv1.HTTPRouteMatch, filter string, inBackend bool) {
	if m == nil {
		return
	}
	switch m.Type {
	case gwv1.FullPathHTTPPathModifier:
		if m.ReplaceFullPath == nil {
			f.errorf(fieldPath(p, "replaceFullPath"), "replaceFullPath must be specified when type is set to 'ReplaceFullPath'")
		}
		if m.ReplacePrefixMatch != nil {
			f.errorf(fieldPath(p, "replacePrefixMatch"), "type must be 'ReplacePrefixMatch' when replacePrefixMatch is set")
		}
	case gwv1.PrefixMatchHTTPPathModifier:
		if m.ReplacePrefixMatch == nil {
			f.errorf(fieldPath(p, "replacePrefixMatch"), "replacePrefixMatch must be specified when type is set to 'ReplacePrefixMatch'")
		}
		if m.ReplaceFullPath != nil {
			f.errorf(fieldPath(p, "replaceFullPath"), "type must be 'ReplaceFullPath' when replaceFullPath is set")
		}
		ok := len(matches) == 1 && matches[0].Path != nil && (matches[0].Path.Type == nil || *matches[0].Path.Type == gwv1.PathMatchPathPrefix)
		if !ok {
			msg := "When using " + filter + " filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified"
			if inBackend {
				msg = "Within backendRefs, w" + msg[1:]
			}
			f.errorf(p, "%s", msg)
		}
	default:
		f.errorf(fieldPath(p, "type"), "unknown value %q (allowed: ReplaceFullPath, ReplacePrefixMatch)", m.Type)
	}
	for _, v := range []*string{m.ReplaceFullPath, m.ReplacePrefixMatch} {
		if v != nil && len(*v) > 1024 {
			f.errorf(p, "path must be at most 1024 characters")
		}
	}
}

func gwCORSProblems(f *fieldErrors, p string, c *gwv1.HTTPCORSFilter) {
	if slices.Contains(c.AllowOrigins, "*") && len(c.AllowOrigins) > 1 {
		f.errorf(fieldPath(p, "allowOrigins"), "AllowOrigins cannot contain '*' alongside other origins")
	}
	if slices.Contains(c.AllowMethods, "*") && len(c.AllowMethods) > 1 {
		f.errorf(fieldPath(p, "allowMethods"), "AllowMethods cannot contain '*' alongside other methods")
	}
	if slices.Contains(c.AllowHeaders, "*") && len(c.AllowHeaders) > 1 {
		f.errorf(fieldPath(p, "allowHeaders"), "AllowHeaders cannot contain '*' alongside other methods")
	}
	if c.MaxAge < 0 {
		f.errorf(fieldPath(p, "maxAge"), "must be at least 0")
	}
}

func validateGRPCRoute(obj *config.Object) []config.FieldError {
	spec := obj.Spec.(*gwv1.GRPCRouteSpec)
	var f fieldErrors
	parentRefsProblems(&f, spec.ParentRefs)
	routeHostnamesProblems(&f, spec.Hostnames)
	if len(spec.Rules) > 16 {
		f.errorf("spec.rules", "at most 16 rules are allowed, got %d", len(spec.Rules))
	}
	names := map[gwv1.SectionName]bool{}
	for i, r := range spec.Rules {
		p := indexPath("spec.rules", i)
		ruleNameProblems(&f, p, r.Name, names)
		for j, m := range r.Matches {
			mp := indexPath(fieldPath(p, "matches"), j)
			if mm := m.Method; mm != nil {
				gp := fieldPath(mp, "method")
				typ := derefOr(mm.Type, "Exact")
				if mm.Service == nil && mm.Method == nil {
					f.errorf(gp, "One or both of 'service' or 'method' must be specified")
				}
				switch typ {
				case "Exact":
					if mm.Service != nil && !gwGRPCServiceRE.MatchString(*mm.Service) {
						f.errorf(fieldPath(gp, "service"), "service must only contain valid characters (matching ^(?i)\\.?[a-z_][a-z_0-9]*(\\.[a-z_][a-z_0-9]*)*$)")
					}
					if mm.Method != nil && !gwGRPCMethodRE.MatchString(*mm.Method) {
						f.errorf(fieldPath(gp, "method"), "method must only contain valid characters (matching ^[A-Za-z_][A-Za-z_0-9]*$)")
					}
				case "RegularExpression":
					for _, v := range []*string{mm.Service, mm.Method} {
						if v == nil {
							continue
						}
						if _, err := regexp.Compile(*v); err != nil {
							f.errorf(gp, "invalid regular expression: %v", err)
						}
					}
				default:
					f.errorf(fieldPath(gp, "type"), "unknown value %q (allowed: Exact, RegularExpression)", typ)
				}
			}
			for k, h := range m.Headers {
				stringMatchRuleProblems(&f, indexPath(fieldPath(mp, "headers"), k), string(h.Name), derefOr(h.Type, "Exact"), h.Value)
			}
		}
		grpcFiltersProblems(&f, fieldPath(p, "filters"), r.Filters)
		for j, b := range r.BackendRefs {
			bp := indexPath(fieldPath(p, "backendRefs"), j)
			backendRefProblems(&f, bp, b.BackendObjectReference)
			weightProblems(&f, bp, b.Weight)
			grpcFiltersProblems(&f, fieldPath(bp, "filters"), b.Filters)
		}
	}
	return f.list
}

func grpcFiltersProblems(f *fieldErrors, p string, filters []gwv1.GRPCRouteFilter) {
	count := map[gwv1.GRPCRouteFilterType]int{}
	for i, fl := range filters {
		fp := indexPath(p, i)
		count[fl.Type]++
		switch fl.Type {
		case gwv1.GRPCRouteFilterRequestHeaderModifier:
			if fl.RequestHeaderModifier == nil {
				f.errorf(fieldPath(fp, "requestHeaderModifier"), "filter.requestHeaderModifier must be specified for RequestHeaderModifier filter.type")
			} else {
				headerFilterProblems(f, fieldPath(fp, "requestHeaderModifier"), fl.RequestHeaderModifier)
			}
		case gwv1.GRPCRouteFilterResponseHeaderModifier:
			if fl.ResponseHeaderModifier == nil {
				f.errorf(fieldPath(fp, "responseHeaderModifier"), "filter.responseHeaderModifier must be specified for ResponseHeaderModifier filter.type")
			} else {
				headerFilterProblems(f, fieldPath(fp, "responseHeaderModifier"), fl.ResponseHeaderModifier)
			}
		case gwv1.GRPCRouteFilterRequestMirror:
			if fl.RequestMirror == nil {
				f.errorf(fieldPath(fp, "requestMirror"), "filter.requestMirror must be specified for RequestMirror filter.type")
			} else {
				mirrorProblems(f, fieldPath(fp, "requestMirror"), fl.RequestMirror)
			}
		case gwv1.GRPCRouteFilterExtensionRef:
			if fl.ExtensionRef == nil {
				f.errorf(fieldPath(fp, "extensionRef"), "filter.extensionRef must be specified for ExtensionRef filter.type")
			}
		default:
			f.errorf(fieldPath(fp, "type"), "unknown value %s (allowed: RequestHeaderModifier, ResponseHeaderModifier, RequestMirror, ExtensionRef)", describe(fl.Type))
		}
	}
	for _, t := range []gwv1.GRPCRouteFilterType{gwv1.GRPCRouteFilterRequestHeaderModifier, gwv1.GRPCRouteFilterResponseHeaderModifier} {
		if count[t] > 1 {
			f.errorf(p, "%s filter cannot be repeated", t)
		}
	}
}

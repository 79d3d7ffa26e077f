package proxy

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/bowline-mesh/bowline/internal/proxy/authz"
	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// matchRoute returns the first route of vh that matches r (first match wins).
func matchRoute(vh *xdsconfig.VirtualHost, r *http.Request, path string, md map[string]map[string]any) *xdsconfig.Route {
	var query url.Values
	for i := range vh.Routes {
		rt := &vh.Routes[i]
		if !matchPath(&rt.Match, path) {
			continue
		}
		if rt.Match.GRPC && !strings.HasPrefix(r.Header.Get("content-type"), "application/grpc") {
			continue
		}
		if !matchHeaders(rt.Match.Headers, r) {
			continue
		}
		if !matchMetadata(rt.Match.Metadata, md) {
			continue
		}
		if len(rt.Match.Query) > 0 {
			if query == nil {
				query = r.URL.Query()
			}
			if !matchQuery(rt.Match.Query, query) {
				continue
			}
		}
		return rt
	}
	return nil
}

// matchPath reports whether path matches the route's path matcher.
func matchPath(m *xdsconfig.RouteMatch, path string) bool {
	if m.Kind == xdsconfig.PathRegex {
		return m.Regex.MatchString(path)
	}
	p := path
	if !m.CaseSensitive {
		p = strings.ToLower(p)
	}
	switch m.Kind {
	case xdsconfig.PathPrefix:
		return strings.HasPrefix(p, m.Path)
	case xdsconfig.PathExact:
		return p == m.Path
	case xdsconfig.PathSeparatedPrefix:
		return p == m.Path || (strings.HasPrefix(p, m.Path) && p[len(m.Path)] == '/')
	}
	return false
}

func matchHeaders(hms []xdsconfig.HeaderMatcher, r *http.Request) bool {
	for i := range hms {
		hm := &hms[i]
		var (
			vals    []string
			present bool
		)
		switch hm.Name {
		case ":authority", "host":
			vals, present = []string{r.Host}, true
		case ":method":
			vals, present = []string{r.Method}, true
		case ":path":
			vals, present = []string{r.URL.RequestURI()}, true
		case ":scheme":
			vals, present = []string{"http"}, true
		default:
			vals = r.Header.Values(hm.Name)
			present = len(vals) > 0
		}
		var ok bool
		switch {
		case hm.Present != nil:
			ok = present == *hm.Present
		case !present:
			ok = hm.MissingAsEmpty && hm.String.Match("")
		default:
			ok = hm.String.Match(strings.Join(vals, ","))
		}
		if ok == hm.Invert {
			return false
		}
	}
	return true
}

func matchQuery(qms []xdsconfig.QueryMatcher, q url.Values) bool {
	for i := range qms {
		qm := &qms[i]
		vals, ok := q[qm.Name]
		if !ok {
			return false
		}
		if qm.String != nil {
			v := ""
			if len(vals) > 0 {
				v = vals[0]
			}
			if !qm.String.Match(v) {
				return false
			}
		}
	}
	return true
}

// rewritePath applies prefix_rewrite or regex_rewrite to path.
func rewritePath(a *xdsconfig.RouteAction, m *xdsconfig.RouteMatch, path string) string {
	switch {
	case a.HasPrefixRewrite && (m.Kind == xdsconfig.PathPrefix || m.Kind == xdsconfig.PathSeparatedPrefix):
		np := a.PrefixRewrite + path[len(m.Path):]
		if np == "" {
			np = "/"
		}
		return np
	case a.HasPrefixRewrite && m.Kind == xdsconfig.PathExact:
		return a.PrefixRewrite
	case a.RegexRewrite != nil:
		return a.RegexRewrite.ReplaceAllString(path, a.RegexSubstitution)
	}
	return path
}

// applyHeaderValues applies header additions to h.
func applyHeaderValues(h http.Header, adds []xdsconfig.HeaderValue) {
	for _, hv := range adds {
		switch hv.Action {
		case xdsconfig.AppendIfExistsOrAdd:
			h.Add(hv.Key, hv.Value)
		case xdsconfig.AddIfAbsent:
			if _, ok := h[http.CanonicalHeaderKey(hv.Key)]; !ok {
				h.Set(hv.Key, hv.Value)
			}
		case xdsconfig.OverwriteIfExistsOrAdd:
			h.Set(hv.Key, hv.Value)
		case xdsconfig.OverwriteIfExists:
			if _, ok := h[http.CanonicalHeaderKey(hv.Key)]; ok {
				h.Set(hv.Key, hv.Value)
			}
		}
	}
}

// editRequest applies request edits, most specific (cluster, route) first
// like Envoy's default, so more general levels can append.
func editRequest(h http.Header, levels ...*xdsconfig.HeaderEdits) {
	for _, e := range levels {
		if e == nil {
			continue
		}
		for _, k := range e.RequestRemove {
			h.Del(k)
		}
		applyHeaderValues(h, e.RequestAdd)
	}
}

func editResponse(h http.Header, levels ...*xdsconfig.HeaderEdits) {
	for _, e := range levels {
		if e == nil {
			continue
		}
		for _, k := range e.ResponseRemove {
			h.Del(k)
		}
		applyHeaderValues(h, e.ResponseAdd)
	}
}

// redirectURL builds the Location for a redirect route. Without a
// scheme_redirect the request's own scheme (downstream, "http" or
// "https") is kept, as Envoy does.
func redirectURL(rd *xdsconfig.Redirect, m *xdsconfig.RouteMatch, r *http.Request, path, downstream string) string {
	scheme := downstream
	if rd.Scheme != "" {
		scheme = rd.Scheme
	}
	host := r.Host
	hostOnly, port := host, ""
	if i := strings.LastIndexByte(host, ':'); i > 0 && !strings.HasSuffix(host, "]") {
		hostOnly, port = host[:i], host[i+1:]
	}
	if rd.Host != "" {
		hostOnly = rd.Host
	}
	if rd.Port != 0 {
		port = itoa(int(rd.Port))
	}
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") || (rd.Scheme != "" && rd.Port == 0) {
		port = ""
	}
	if port != "" {
		hostOnly += ":" + port
	}
	p := path
	switch {
	case rd.Path != "":
		p = rd.Path
	case rd.HasPrefixRewrite && m.Kind != xdsconfig.PathRegex:
		p = rd.PrefixRewrite + path[min(len(m.Path), len(path)):]
	}
	u := scheme + "://" + hostOnly + p
	if !rd.StripQuery && r.URL.RawQuery != "" && !strings.Contains(p, "?") {
		u += "?" + r.URL.RawQuery
	}
	return u
}

// matchMetadata reports whether every dynamic_metadata matcher matches md.
func matchMetadata(ms []authz.MetadataMatcher, md map[string]map[string]any) bool {
	for _, m := range ms {
		if !m.Match(md) {
			return false
		}
	}
	return true
}

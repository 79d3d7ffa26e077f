package proxy

import (
	"net/http"
	"strconv"
	"time"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// exchange is one HTTP request on its way through an HCM's filter chain and
// the router. The route is resolved before the chain runs (as Envoy's HCM
// does) so filters can read per-route config; it is nil when nothing matched
// and the router will answer 404 NR.
type exchange struct {
	p     *Proxy
	w     http.ResponseWriter
	r     *http.Request
	rec   *record
	info  *connInfo
	snap  *snapshot
	rt    *routeTable
	vh    *xdsconfig.VirtualHost
	route *xdsconfig.Route
	// chain are the HCM's filters; decoded counts those whose decode ran,
	// whose encode then runs on the response headers.
	chain   []httpFilter
	decoded int
	// corsOrigin is the request Origin the cors filter accepted, if any.
	corsOrigin string
	corsPolicy *xdsconfig.CORSPolicy
	// reset asks the server to reset the downstream stream.
	reset bool
	// hcm is the connection manager serving the request (nil without one).
	hcm *xdsconfig.HTTPConnectionManager
	// sec is the security filters' per-request state (filters_security.go).
	sec securityState
	// recBuf holds rec, so a pooled exchange carries its record.
	recBuf record
	// span is the request's tracing state (tracing.go), nil when the HCM does not trace.
	span *reqSpan
}

// scheme is the downstream connection's: "https" when this proxy
// terminated TLS for it, else "http".
func (x *exchange) scheme() string {
	if x.info != nil && x.info.peer != nil {
		return "https"
	}
	return "http"
}

// httpFilter is one HTTP filter of an HCM chain (envoy.filters.http.*),
// built once per config snapshot from the HCM's http_filters and shared by
// all requests: implementations keep per-request state in the exchange or
// the request context, never in the filter.
//
// Adding a filter (RBAC, JWT authn): implement httpFilter in your own package
// or file, add a case to newHTTPFilter for your xdsconfig type, and add the
// config conversion in xdsconfig (see unmarshalHTTPFilterConfig). The router
// is not touched: serveHTTP runs every filter's decode in chain order before
// routing, and a filter that answers by itself (403, 401) calls
// exchange.localReply and returns true; its encode hooks still run.
type httpFilter interface {
	// decode sees the request headers before the router. Returning true stops
	// the chain; the filter must then have answered with localReply.
	decode(x *exchange) (stop bool)
	// encode edits the response headers just before they are sent, for
	// upstream responses and local replies alike.
	encode(x *exchange, h http.Header)
}

var (
	_ httpFilter = faultFilter{}
	_ httpFilter = corsFilter{}
)

// newHTTPFilter builds the runtime filter for one checked HCM filter, or nil
// for the router (which is not a chain member: it runs after the chain).
// env carries what the security filters need (filters_security.go).
func newHTTPFilter(f xdsconfig.HTTPFilter, env *filterEnv) httpFilter {
	switch c := f.Config.(type) {
	case *xdsconfig.Fault:
		return faultFilter{cfg: c}
	case *xdsconfig.CORSFilter:
		return corsFilter{}
	case *xdsconfig.RBACFilter:
		return env.rbacAuthz(f.Name, c)
	case *xdsconfig.JWTAuthnFilter:
		return env.jwtAuthn(f.Name, c)
	case *xdsconfig.ExtAuthzFilter:
		return env.extAuthz(f.Name, c)
	case *xdsconfig.LocalRateLimit: // filters_ratelimit.go
		return localRateLimitFilter{name: f.Name, cfg: c, rl: env.rateLimits()}
	case *xdsconfig.RateLimitFilter:
		return newGlobalRateLimitFilter(c, env.rateLimits())
	}
	return nil
}

// buildChain returns the runtime filters of an HCM, in order.
func buildChain(h *xdsconfig.HTTPConnectionManager, env *filterEnv) []httpFilter {
	var out []httpFilter
	for _, f := range h.Filters {
		if hf := newHTTPFilter(f, env); hf != nil {
			out = append(out, hf)
		}
	}
	return out
}

// writeHeader runs the encode hooks of the filters that saw the request
// (last first, as Envoy encodes) and sends the status.
func (x *exchange) writeHeader(code int) {
	h := x.w.Header()
	for i := x.decoded - 1; i >= 0; i-- {
		x.chain[i].encode(x, h)
	}
	if x.hcm != nil {
		switch x.hcm.ServerHeader {
		case xdsconfig.ServerOverwrite:
			h.Set("server", x.hcm.ServerName)
		case xdsconfig.ServerAppendIfAbsent:
			if h.Get("server") == "" {
				h.Set("server", x.hcm.ServerName)
			}
		}
	}
	x.w.WriteHeader(code)
	x.rec.code = code
}

// localReply answers the request from the proxy itself.
func (x *exchange) localReply(code int, body string) {
	if body != "" {
		x.w.Header().Set("content-type", "text/plain")
	}
	x.writeHeader(code)
	if body != "" {
		n, _ := x.w.Write([]byte(body))
		x.rec.bytesOut += int64(n)
	}
}

// faultFilter is envoy.filters.http.fault: the route's typed_per_filter_config
// overrides the filter's own config.
type faultFilter struct{ cfg *xdsconfig.Fault }

func (f faultFilter) decode(x *exchange) bool {
	fault := f.cfg
	if x.route != nil && x.route.Fault != nil {
		fault = x.route.Fault
	}
	if fault == nil {
		return false
	}
	if fault.Delay > 0 && sampled(fault.DelayPerMillion) {
		x.rec.flags |= flagDI
		t := time.NewTimer(fault.Delay)
		select {
		case <-t.C:
		case <-x.r.Context().Done():
			t.Stop()
			x.rec.flags |= flagDC
			return true
		}
	}
	if fault.AbortStatus > 0 && sampled(fault.AbortPerMillion) {
		x.rec.flags |= flagFI
		x.noteRouteCluster()
		if fault.HasGRPCAbort {
			gs := strconv.Itoa(int(fault.AbortGRPCStatus))
			x.w.Header().Set("content-type", "application/grpc")
			x.w.Header().Set("grpc-status", gs)
			x.rec.grpcStatus = gs
			x.localReply(fault.AbortStatus, "")
			return true
		}
		x.localReply(fault.AbortStatus, "fault filter abort")
		return true
	}
	return false
}

func (faultFilter) encode(*exchange, http.Header) {}

// noteRouteCluster records the route's cluster and its services for a
// request answered before the router picks one (a fault abort), as Envoy's
// connection manager knows the cluster once the route is resolved: metrics
// then name the destination service (reviews.default.svc.cluster.local)
// rather than the authority.
func (x *exchange) noteRouteCluster() {
	if x.rec.upstreamCluster != "" || x.route == nil || x.route.Action == nil || len(x.route.Action.Clusters) == 0 {
		return
	}
	name := x.route.Action.Clusters[0].Name
	x.rec.upstreamCluster = name
	if c := x.snap.clusters[name]; c != nil {
		x.rec.services = c.cfg.Services
	}
}

// corsFilter is envoy.filters.http.cors with Envoy's semantics: the policy is
// the route's (else the virtual host's); requests without Origin, or whose
// route is a redirect or direct response, pass untouched. A preflight
// (OPTIONS with Origin and Access-Control-Request-Method) from an allowed
// origin is answered 200 with allow-origin (the request's origin),
// allow-methods, allow-headers, max-age and allow-credentials; a preflight
// from another origin goes upstream unless forward_not_matching_preflights is
// false (then 200 without CORS headers). Other requests from an allowed
// origin get allow-origin, allow-credentials and expose-headers added to the
// response.
type corsFilter struct{}

func (corsFilter) decode(x *exchange) bool {
	if x.route == nil || x.route.CORS == nil || x.route.Action == nil {
		return false
	}
	pol := x.route.CORS
	origin := x.r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	enforce := sampled(pol.EnabledPerMillion)
	if !enforce {
		// Shadow mode evaluates without enforcing: nothing visible changes.
		return false
	}
	allowed := false
	for _, m := range pol.AllowOrigins {
		if m.Match(origin) {
			allowed = true
			break
		}
	}
	preflight := x.r.Method == http.MethodOptions && x.r.Header.Get("Access-Control-Request-Method") != ""
	if !allowed {
		if preflight && !pol.ForwardNotMatchingPreflights {
			x.localReply(http.StatusOK, "")
			return true
		}
		return false
	}
	x.corsOrigin, x.corsPolicy = origin, pol
	if !preflight {
		return false
	}
	h := x.w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	if pol.AllowCredentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if pol.AllowMethods != "" {
		h.Set("Access-Control-Allow-Methods", pol.AllowMethods)
	}
	if pol.AllowHeaders != "" {
		h.Set("Access-Control-Allow-Headers", pol.AllowHeaders)
	}
	if pol.MaxAge != "" {
		h.Set("Access-Control-Max-Age", pol.MaxAge)
	}
	x.corsPolicy = nil // the preflight answer carries its own headers
	x.localReply(http.StatusOK, "")
	return true
}

func (corsFilter) encode(x *exchange, h http.Header) {
	pol := x.corsPolicy
	if pol == nil {
		return
	}
	h.Set("Access-Control-Allow-Origin", x.corsOrigin)
	if pol.AllowCredentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if pol.ExposeHeaders != "" {
		h.Set("Access-Control-Expose-Headers", pol.ExposeHeaders)
	}
}

package validation

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/config"
)

// meshGateway is the reserved gateway name for the sidecars of the mesh.
const meshGateway = "mesh"

// validateVirtualService applies Istio's VirtualService rules: hosts (or a
// delegate without hosts), gateways, HTTP/TLS/TCP routes and exportTo, and
// warns about rules that can never match.
func validateVirtualService(obj *config.Object) []config.FieldError {
	vs, ok := obj.Spec.(*networking.VirtualService)
	if !ok {
		return nil
	}
	f := &fieldErrors{}
	delegate := len(vs.GetHosts()) == 0
	if delegate {
		// A VirtualService without hosts is a delegate: it only holds HTTP routes.
		if len(vs.GetGateways()) > 0 {
			f.errorf("spec.gateways", "a delegate virtual service (one without hosts) must not specify gateways")
		}
		if len(vs.GetTls()) > 0 {
			f.errorf("spec.tls", "a delegate virtual service (one without hosts) must not have tls routes")
		}
		if len(vs.GetTcp()) > 0 {
			f.errorf("spec.tcp", "a delegate virtual service (one without hosts) must not have tcp routes")
		}
	}

	appliesToGateway := false
	if len(vs.GetGateways()) > 0 {
		gatewayNameProblems(f, "spec.gateways", vs.GetGateways())
		appliesToGateway = !containsString(vs.GetGateways(), meshGateway)
	}
	appliesToMesh := !appliesToGateway

	if !appliesToGateway {
		for i, h := range vs.GetHttp() {
			for j, m := range h.GetMatch() {
				mp := indexPath(fieldPath(indexPath("spec.http", i), "match"), j)
				for _, field := range []struct {
					name string
					m    map[string]*networking.StringMatch
				}{{"headers", m.GetHeaders()}, {"withoutHeaders", m.GetWithoutHeaders()}} {
					for _, k := range sortedMapKeys(field.m) {
						if isJWTClaimRoute(k) {
							f.errorf(keyPath(fieldPath(mp, field.name), k), "routing on JWT claim %q is only supported for virtual services bound to gateways (not mesh)", k)
						}
					}
				}
			}
		}
	}

	allHostsValid := true
	for i, h := range vs.GetHosts() {
		hp := indexPath("spec.hosts", i)
		var msg string
		if appliesToGateway {
			msg = gatewayBoundHostProblem(h, hasSNIHosts(vs))
		} else {
			msg = wildcardDomainProblem(h)
		}
		switch {
		case msg != "" && !isIP(h):
			f.errorf(hp, "%s", msg)
			allHostsValid = false
		case msg == "" && appliesToMesh && h == "*":
			f.errorf(hp, "wildcard host \"*\" is not allowed for virtual services bound to the mesh")
			allHostsValid = false
		}
	}
	if allHostsValid {
		hosts := vs.GetHosts()
		for i := range hosts {
			for j := i + 1; j < len(hosts); j++ {
				if hostMatches(hosts[i], hosts[j]) {
					f.errorf(indexPath("spec.hosts", j), "duplicate host: %q overlaps %q", hosts[j], hosts[i])
				}
			}
		}
	}

	if len(vs.GetHttp()) == 0 && len(vs.GetTcp()) == 0 && len(vs.GetTls()) == 0 {
		f.errorf("spec", "at least one of http, tcp or tls routes is required")
	}
	for i, h := range vs.GetHttp() {
		p := indexPath("spec.http", i)
		if h == nil {
			f.errorf(p, "http route must not be null")
			continue
		}
		httpRouteProblems(f, p, h, delegate)
	}
	for i, t := range vs.GetTls() {
		tlsRouteProblems(f, indexPath("spec.tls", i), t, vs, appliesToGateway)
	}
	for i, t := range vs.GetTcp() {
		tcpRouteProblems(f, indexPath("spec.tcp", i), t)
	}
	exportToProblems(f, "spec.exportTo", obj.Meta.Namespace, vs.GetExportTo(), false)

	unreachableHTTPRules(f, vs.GetHttp())
	unreachableL4Rules(f, "spec.tcp", len(vs.GetTcp()), func(i int) []proto.Message {
		var ms []proto.Message
		for _, m := range vs.GetTcp()[i].GetMatch() {
			ms = append(ms, m)
		}
		return ms
	})
	unreachableL4Rules(f, "spec.tls", len(vs.GetTls()), func(i int) []proto.Message {
		var ms []proto.Message
		for _, m := range vs.GetTls()[i].GetMatch() {
			ms = append(ms, m)
		}
		return ms
	})
	return f.list
}

func containsString(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func hasSNIHosts(vs *networking.VirtualService) bool {
	for _, t := range vs.GetTls() {
		for _, m := range t.GetMatch() {
			if len(m.GetSniHosts()) > 0 {
				return true
			}
		}
	}
	return false
}

// outboundSNIRE is the form of SNI names Istio generates for its own clusters
// ("outbound_.80_._.reviews.default.svc.cluster.local"), allowed in gateway routes.
var outboundSNIRE = regexp.MustCompile(`outbound_.([0-8].*).*`)

// gatewayBoundHostProblem checks a host of a virtual service bound to
// gateways: like any host, plus Istio's auto-generated "outbound_" SNI names.
func gatewayBoundHostProblem(h string, sni bool) string {
	if p := dnsPreconditions(h); p != "" {
		return p
	}
	first, _, _ := strings.Cut(h, ".")
	if sni && first == "outbound_" {
		if !outboundSNIRE.MatchString(h) {
			return fmt.Sprintf("domain name %q is invalid: label %q is not a DNS-1123 label", h, first)
		}
		return ""
	}
	return wildcardDomainProblem(h)
}

// isJWTClaimRoute reports whether a header match key is Istio's JWT claim
// routing form: "@request.auth.claims.sub" or "@request.auth.claims[a][b]".
func isJWTClaimRoute(key string) bool {
	const prefix = "@request.auth.claims"
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return false
	}
	if after, ok := strings.CutPrefix(rest, "."); ok {
		return after != ""
	}
	return strings.HasPrefix(rest, "[") && strings.HasSuffix(rest, "]") && len(rest) > 2
}

// gatewayNameProblems checks gateway references: "mesh", "namespace/name" or
// a bare name; the legacy "name.namespace..." form is accepted with a warning.
func gatewayNameProblems(f *fieldErrors, p string, names []string) {
	for i, name := range names {
		np := indexPath(p, i)
		ns, gw, ok := strings.Cut(name, "/")
		if !ok {
			if strings.Contains(name, ".") {
				parts := strings.Split(name, ".")
				f.warnf(np, "legacy gateway name form %q; prefer namespace/name: %q", name, parts[1]+"/"+parts[0])
			}
			f.reason(np, fqdnProblem(name))
			continue
		}
		if ns == "" || gw == "" {
			f.errorf(np, "namespace and name of gateway %q must not be empty", name)
			continue
		}
		if !isDNSLabel(ns) {
			f.errorf(np, "invalid namespace %q in gateway %q", ns, name)
		}
		if !isDNSLabel(gw) {
			f.errorf(np, "invalid gateway name %q in %q", gw, name)
		}
	}
}

// httpRouteProblems checks one HTTP route at p ("spec.http[0]").
func httpRouteProblems(f *fieldErrors, p string, h *networking.HTTPRoute, delegate bool) {
	httpRouteConflicts(f, p, h, delegate)
	httpMatchProblems(f, p, h)
	headerOperationProblems(f, fieldPath(p, "headers"), h.GetHeaders())
	corsProblems(f, fieldPath(p, "corsPolicy"), h.GetCorsPolicy())
	faultProblems(f, fieldPath(p, "fault"), h.GetFault())

	//nolint:staticcheck // mirrorPercent is deprecated but still accepted.
	if mp := h.GetMirrorPercent(); mp != nil {
		if mp.GetValue() > 100 {
			f.errorf(fieldPath(p, "mirrorPercent"), "must be between 0 and 100, got %d", mp.GetValue())
		}
		f.warnf(fieldPath(p, "mirrorPercent"), "mirrorPercent is deprecated, use mirrorPercentage")
	}
	if mp := h.GetMirrorPercentage(); mp != nil {
		if v := mp.GetValue(); v < 0 || v > 100 {
			f.errorf(fieldPath(p, "mirrorPercentage.value"), "must be between 0 and 100, got %v", v)
		}
	}
	if h.GetMirror() != nil {
		destinationProblems(f, fieldPath(p, "mirror"), h.GetMirror())
	}
	for i, m := range h.GetMirrors() {
		mp := indexPath(fieldPath(p, "mirrors"), i)
		if m == nil {
			f.errorf(mp, "mirror must not be null")
			continue
		}
		if m.GetDestination() == nil {
			f.errorf(fieldPath(mp, "destination"), "destination is required")
			continue
		}
		destinationProblems(f, fieldPath(mp, "destination"), m.GetDestination())
		if pc := m.GetPercentage(); pc != nil {
			if v := pc.GetValue(); v < 0 || v > 100 {
				f.errorf(fieldPath(mp, "percentage.value"), "must be between 0 and 100, got %v", v)
			}
		}
	}
	redirectProblems(f, fieldPath(p, "redirect"), h.GetRedirect())
	directResponseProblems(f, fieldPath(p, "directResponse"), h.GetDirectResponse())
	retryProblems(f, fieldPath(p, "retries"), h.GetRetries())
	rewriteProblems(f, fieldPath(p, "rewrite"), h.GetRewrite())
	authorityRewriteProblems(f, p, h)
	httpDestinationProblems(f, fieldPath(p, "route"), h.GetRoute())
	durationProblems(f, fieldPath(p, "timeout"), h.GetTimeout())
}

// httpRouteConflicts enforces which actions a route may combine: exactly one
// of route, redirect, directResponse (or delegate for a root route).
func httpRouteConflicts(f *fieldErrors, p string, h *networking.HTTPRoute, delegate bool) {
	if !delegate && h.GetDelegate() != nil {
		// A root route only delegates.
		if h.GetRedirect() != nil {
			f.errorf(fieldPath(p, "redirect"), "a route with delegate must not specify redirect")
		}
		if h.Route != nil {
			f.errorf(fieldPath(p, "route"), "a route with delegate must not specify route")
		}
		return
	}
	if delegate && h.GetDelegate() != nil {
		f.errorf(fieldPath(p, "delegate"), "a delegate virtual service's route cannot delegate again")
	}
	switch {
	case h.GetRedirect() != nil:
		if len(h.GetRoute()) > 0 {
			f.errorf(fieldPath(p, "redirect"), "route and redirect cannot both be set")
		}
		if h.GetFault() != nil {
			f.errorf(fieldPath(p, "redirect"), "fault and redirect cannot both be set")
		}
		if h.GetRewrite() != nil {
			f.errorf(fieldPath(p, "redirect"), "rewrite and redirect cannot both be set")
		}
		if h.GetDirectResponse() != nil {
			f.errorf(fieldPath(p, "redirect"), "directResponse and redirect cannot both be set")
		}
	case h.GetDirectResponse() != nil:
		if len(h.GetRoute()) > 0 {
			f.errorf(fieldPath(p, "directResponse"), "route and directResponse cannot both be set")
		}
		if h.GetFault() != nil {
			f.errorf(fieldPath(p, "directResponse"), "fault and directResponse cannot both be set")
		}
		if h.GetRewrite() != nil {
			f.errorf(fieldPath(p, "directResponse"), "rewrite and directResponse cannot both be set")
		}
	case len(h.GetRoute()) == 0:
		f.errorf(p, "one of route, redirect, directResponse or delegate is required")
	}
	if h.GetMirror() != nil && len(h.GetMirrors()) > 0 {
		f.errorf(fieldPath(p, "mirrors"), "mirror and mirrors cannot both be set")
	}
}

func httpMatchProblems(f *fieldErrors, p string, h *networking.HTTPRoute) {
	for i, m := range h.GetMatch() {
		mp := indexPath(fieldPath(p, "match"), i)
		if m == nil {
			continue
		}
		for _, k := range sortedMapKeys(m.GetHeaders()) {
			kp := keyPath(fieldPath(mp, "headers"), k)
			sm := m.GetHeaders()[k]
			if sm == nil {
				f.errorf(kp, "header match must not be null")
			}
			if !isJWTClaimRoute(k) {
				f.reason(kp, headerNameProblem(k))
			}
			stringMatchProblems(f, kp, sm, false)
		}
		for _, k := range sortedMapKeys(m.GetWithoutHeaders()) {
			kp := keyPath(fieldPath(mp, "withoutHeaders"), k)
			if !isJWTClaimRoute(k) {
				f.reason(kp, headerNameProblem(k))
			}
			// regex "*" is not RE2 here: it means "header present".
			if sm := m.GetWithoutHeaders()[k]; sm != nil && sm.GetRegex() != "*" {
				stringMatchProblems(f, kp, sm, false)
			}
		}
		// Envoy allows an empty URI prefix, not an empty scheme/method/authority prefix.
		stringMatchProblems(f, fieldPath(mp, "uri"), m.GetUri(), true)
		stringMatchProblems(f, fieldPath(mp, "scheme"), m.GetScheme(), false)
		stringMatchProblems(f, fieldPath(mp, "method"), m.GetMethod(), false)
		stringMatchProblems(f, fieldPath(mp, "authority"), m.GetAuthority(), false)
		for _, k := range sortedMapKeys(m.GetQueryParams()) {
			stringMatchProblems(f, keyPath(fieldPath(mp, "queryParams"), k), m.GetQueryParams()[k], false)
		}
		if m.GetPort() != 0 {
			f.reason(fieldPath(mp, "port"), portProblem(int64(m.GetPort())))
		}
		labelProblems(f, fieldPath(mp, "sourceLabels"), m.GetSourceLabels())
		gatewayNameProblems(f, fieldPath(mp, "gateways"), m.GetGateways())
		if ns := m.GetSourceNamespace(); ns != "" && !isDNSLabel(ns) {
			f.errorf(fieldPath(mp, "sourceNamespace"), "invalid namespace %q", ns)
		}
	}
}

// headerOperationProblems checks request/response header edits.
func headerOperationProblems(f *fieldErrors, p string, h *networking.Headers) {
	if h == nil {
		return
	}
	// The authority may be rewritten through :authority or host on requests.
	headerEditProblems(f, fieldPath(p, "request"), h.GetRequest(), true)
	headerEditProblems(f, fieldPath(p, "response"), h.GetResponse(), false)
}

// headerEditProblems checks the set, add and remove edits of one direction;
// allowAuthority lets set and add name the authority.
func headerEditProblems(f *fieldErrors, p string, ops *networking.Headers_HeaderOperations, allowAuthority bool) {
	for _, op := range []struct {
		path string
		m    map[string]string
	}{{fieldPath(p, "set"), ops.GetSet()}, {fieldPath(p, "add"), ops.GetAdd()}} {
		for _, k := range sortedMapKeys(op.m) {
			kp := keyPath(op.path, k)
			f.reason(kp, headerEditNameProblem(k, allowAuthority))
			f.reason(kp, headerValueProblem(op.m[k]))
		}
	}
	for i, k := range ops.GetRemove() {
		f.reason(indexPath(fieldPath(p, "remove"), i), headerEditNameProblem(k, false))
	}
}

func isAuthorityHeader(k string) bool {
	return strings.EqualFold(k, ":authority") || strings.EqualFold(k, "host")
}

// headerEditNameProblem checks a header name to set, add or remove: pseudo
// headers (":path") and Host cannot be edited, except that requests may set
// the authority when allowAuthority.
func headerEditNameProblem(name string, allowAuthority bool) string {
	if name == "" {
		return "header name must not be empty"
	}
	if allowAuthority && isAuthorityHeader(name) {
		return ""
	}
	if strings.EqualFold(name, "host") {
		return "the Host header cannot be edited here (use rewrite.authority)"
	}
	if strings.HasPrefix(name, ":") {
		return fmt.Sprintf("pseudo header %q cannot be edited", name)
	}
	return ""
}

// authorityRewriteProblems allows the authority to be rewritten in one place only.
func authorityRewriteProblems(f *fieldErrors, p string, h *networking.HTTPRoute) {
	current := h.GetRewrite().GetAuthority()
	req := h.GetHeaders().GetRequest()
	for _, op := range []struct {
		name string
		m    map[string]string
	}{{"set", req.GetSet()}, {"add", req.GetAdd()}} {
		for _, k := range sortedMapKeys(op.m) {
			if !isAuthorityHeader(k) {
				continue
			}
			if current != "" {
				f.errorf(keyPath(fieldPath(p, "headers.request."+op.name), k), "authority is already rewritten to %q, cannot also set it to %q", current, op.m[k])
				return
			}
			current = op.m[k]
		}
	}
}

var corsMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true, http.MethodPatch: true,
	http.MethodDelete: true, http.MethodConnect: true, http.MethodOptions: true, http.MethodTrace: true,
}

func corsProblems(f *fieldErrors, p string, c *networking.CorsPolicy) {
	if c == nil {
		return
	}
	for i, o := range c.GetAllowOrigins() {
		op := indexPath(fieldPath(p, "allowOrigins"), i)
		if o.GetExact() == "" && o.GetPrefix() == "" && o.GetRegex() == "" {
			f.errorf(op, "origin match must not be empty")
			continue
		}
		if re := o.GetRegex(); re != "" {
			f.reason(fieldPath(op, "regex"), regexProblem(re))
		}
	}
	for i, m := range c.GetAllowMethods() {
		if !corsMethods[m] {
			f.errorf(indexPath(fieldPath(p, "allowMethods"), i), "%q is not a supported HTTP method", m)
		}
	}
	for _, hs := range []struct {
		name string
		list []string
	}{{"allowHeaders", c.GetAllowHeaders()}, {"exposeHeaders", c.GetExposeHeaders()}} {
		for i, h := range hs.list {
			if h != "*" {
				f.reason(indexPath(fieldPath(p, hs.name), i), headerNameProblem(h))
			}
		}
	}
	if ma := c.GetMaxAge(); ma != nil {
		durationProblems(f, fieldPath(p, "maxAge"), ma)
		if ma.GetNanos() > 0 {
			f.errorf(fieldPath(p, "maxAge"), "must be a whole number of seconds")
		}
	}
}

// grpcStatuses are the status names Envoy's gRPC abort accepts.
var grpcStatuses = map[string]bool{
	"OK": true, "CANCELLED": true, "UNKNOWN": true, "INVALID_ARGUMENT": true, "DEADLINE_EXCEEDED": true,
	"NOT_FOUND": true, "ALREADY_EXISTS": true, "PERMISSION_DENIED": true, "RESOURCE_EXHAUSTED": true,
	"FAILED_PRECONDITION": true, "ABORTED": true, "OUT_OF_RANGE": true, "UNIMPLEMENTED": true,
	"INTERNAL": true, "UNAVAILABLE": true, "DATA_LOSS": true, "UNAUTHENTICATED": true,
}

func httpStatusProblem(s int64) string {
	if s < 200 || s > 599 {
		return fmt.Sprintf("http status %d must be between 200 and 599", s)
	}
	return ""
}

func faultProblems(f *fieldErrors, p string, fault *networking.HTTPFaultInjection) {
	if fault == nil {
		return
	}
	if fault.GetAbort() == nil && fault.GetDelay() == nil {
		f.errorf(p, "fault injection needs an abort, a delay or both")
	}
	if a := fault.GetAbort(); a != nil {
		ap := fieldPath(p, "abort")
		f.reason(fieldPath(ap, "percentage.value"), fractionalPercentProblem(a.GetPercentage()))
		switch e := a.GetErrorType().(type) {
		case *networking.HTTPFaultInjection_Abort_HttpStatus:
			f.reason(fieldPath(ap, "httpStatus"), httpStatusProblem(int64(e.HttpStatus)))
		case *networking.HTTPFaultInjection_Abort_GrpcStatus:
			if !grpcStatuses[e.GrpcStatus] {
				f.errorf(fieldPath(ap, "grpcStatus"), "unknown gRPC status %q (use a name such as NOT_FOUND or UNAVAILABLE)", e.GrpcStatus)
			}
		case *networking.HTTPFaultInjection_Abort_Http2Error:
			f.errorf(fieldPath(ap, "http2Error"), "http2Error abort is not supported")
		default:
			f.warnf(ap, "abort has no httpStatus or grpcStatus, it does nothing")
		}
	}
	if d := fault.GetDelay(); d != nil {
		dp := fieldPath(p, "delay")
		f.reason(fieldPath(dp, "percentage.value"), fractionalPercentProblem(d.GetPercentage()))
		//nolint:staticcheck // percent is deprecated but still accepted.
		if d.GetPercent() != 0 {
			f.reason(fieldPath(dp, "percent"), percentProblem(int64(d.GetPercent())))
		}
		switch t := d.GetHttpDelayType().(type) {
		case *networking.HTTPFaultInjection_Delay_FixedDelay:
			durationProblems(f, fieldPath(dp, "fixedDelay"), t.FixedDelay)
		case *networking.HTTPFaultInjection_Delay_ExponentialDelay:
			durationProblems(f, fieldPath(dp, "exponentialDelay"), t.ExponentialDelay)
			f.errorf(fieldPath(dp, "exponentialDelay"), "exponentialDelay is not supported")
		}
	}
}

// destinationProblems checks a route destination at p: host required and not
// "*", subset a DNS-1123 label, port 1..65535.
func destinationProblems(f *fieldErrors, p string, d *networking.Destination) {
	if d == nil {
		return
	}
	switch h := d.GetHost(); h {
	case "":
		f.errorf(fieldPath(p, "host"), "destination host is required")
	case "*":
		f.errorf(fieldPath(p, "host"), "destination host cannot be \"*\"")
	default:
		f.reason(fieldPath(p, "host"), wildcardDomainProblem(h))
	}
	if d.GetSubset() != "" {
		f.reason(fieldPath(p, "subset"), subsetNameProblem(d.GetSubset()))
	}
	if d.GetPort() != nil {
		f.reason(fieldPath(p, "port.number"), portProblem(int64(d.GetPort().GetNumber())))
	}
}

func subsetNameProblem(name string) string {
	if name == "" {
		return "subset name is required"
	}
	if !isDNSLabel(name) {
		return fmt.Sprintf("invalid subset name %q: must be a DNS-1123 label", name)
	}
	return ""
}

func redirectProblems(f *fieldErrors, p string, r *networking.HTTPRedirect) {
	if r == nil {
		return
	}
	if r.GetUri() == "" && r.GetAuthority() == "" && r.GetRedirectPort() == nil && r.GetScheme() == "" && r.GetPrefixRewrite() == "" {
		f.errorf(p, "redirect must set at least one of uri, prefixRewrite, authority, scheme or port")
	}
	if r.GetUri() != "" && r.GetPrefixRewrite() != "" {
		f.errorf(fieldPath(p, "prefixRewrite"), "uri and prefixRewrite cannot both be set")
	}
	if c := r.GetRedirectCode(); c != 0 && (c < 300 || c > 399) {
		f.errorf(fieldPath(p, "redirectCode"), "redirect code %d must be between 300 and 399", c)
	}
	if s := r.GetScheme(); s != "" && s != "http" && s != "https" {
		f.errorf(fieldPath(p, "scheme"), "scheme %q must be \"http\" or \"https\"", s)
	}
	if _, ok := r.GetRedirectPort().(*networking.HTTPRedirect_Port); ok {
		f.reason(fieldPath(p, "port"), portProblem(int64(r.GetPort())))
	}
}

const (
	directResponseWarnSize = 100 * 1024
	directResponseMaxSize  = 1024 * 1024
)

func directResponseProblems(f *fieldErrors, p string, d *networking.HTTPDirectResponse) {
	if d == nil {
		return
	}
	f.reason(fieldPath(p, "status"), httpStatusProblem(int64(d.GetStatus())))
	if b := d.GetBody(); b != nil {
		size := len(b.GetString_()) + len(b.GetBytes())
		switch {
		case size > directResponseMaxSize:
			f.errorf(fieldPath(p, "body"), "body of %d bytes is too large (at most 1MiB)", size)
		case size > directResponseWarnSize:
			f.warnf(fieldPath(p, "body"), "body of %d bytes is large and slows down configuration pushes", size)
		}
	}
}

// retryOnPolicies are Envoy's x-envoy-retry-on and x-envoy-retry-grpc-on values.
var retryOnPolicies = map[string]bool{
	"5xx": true, "gateway-error": true, "reset": true, "reset-before-request": true, "connect-failure": true,
	"retriable-4xx": true, "refused-stream": true, "retriable-status-codes": true, "retriable-headers": true,
	"envoy-ratelimited": true, "http3-post-connect-failure": true,
	"cancelled": true, "deadline-exceeded": true, "internal": true, "resource-exhausted": true, "unavailable": true,
}

func retryProblems(f *fieldErrors, p string, r *networking.HTTPRetry) {
	if r == nil {
		return
	}
	if r.GetAttempts() < 0 {
		f.errorf(fieldPath(p, "attempts"), "attempts must not be negative")
	}
	if r.GetAttempts() == 0 && (r.GetPerTryTimeout() != nil || r.GetRetryOn() != "" || r.GetRetryRemoteLocalities() != nil) {
		f.errorf(fieldPath(p, "attempts"), "retry settings are given but attempts is 0 (retries disabled)")
	}
	durationProblems(f, fieldPath(p, "perTryTimeout"), r.GetPerTryTimeout())
	durationProblems(f, fieldPath(p, "backoff"), r.GetBackoff())
	if on := r.GetRetryOn(); on != "" {
		for _, policy := range strings.Split(on, ",") {
			if code, err := strconv.Atoi(policy); err == nil && http.StatusText(code) != "" {
				continue
			}
			if !retryOnPolicies[policy] {
				f.errorf(fieldPath(p, "retryOn"), "%q is not a valid retryOn policy", policy)
			}
		}
	}
}

func rewriteProblems(f *fieldErrors, p string, r *networking.HTTPRewrite) {
	if r == nil {
		return
	}
	if r.GetUri() != "" && r.GetUriRegexRewrite() != nil {
		f.errorf(fieldPath(p, "uriRegexRewrite"), "uri and uriRegexRewrite cannot both be set")
	}
	if r.GetUri() == "" && r.GetUriRegexRewrite() == nil && r.GetAuthority() == "" {
		f.errorf(p, "rewrite must set uri, uriRegexRewrite or authority")
	}
	if rr := r.GetUriRegexRewrite(); rr != nil {
		rp := fieldPath(p, "uriRegexRewrite")
		if rr.GetMatch() == "" || rr.GetRewrite() == "" {
			f.errorf(rp, "uriRegexRewrite needs both match and rewrite")
		}
		if rr.GetMatch() != "" {
			f.reason(fieldPath(rp, "match"), regexProblem(rr.GetMatch()))
		}
	}
}

// httpDestinationProblems checks weighted HTTP destinations. Weights are
// relative (Envoy normalises them); they must not be negative and must not
// all be 0 when there is more than one destination.
func httpDestinationProblems(f *fieldErrors, p string, routes []*networking.HTTPRouteDestination) {
	var total int64
	for i, r := range routes {
		rp := indexPath(p, i)
		if r == nil {
			f.errorf(rp, "route destination must not be null")
			continue
		}
		if r.GetDestination() == nil {
			f.errorf(fieldPath(rp, "destination"), "destination is required")
		} else {
			destinationProblems(f, fieldPath(rp, "destination"), r.GetDestination())
		}
		headerOperationProblems(f, fieldPath(rp, "headers"), r.GetHeaders())
		if r.GetWeight() < 0 {
			f.errorf(fieldPath(rp, "weight"), "weight %d must not be negative", r.GetWeight())
		}
		total += int64(r.GetWeight())
	}
	if len(routes) > 1 && total == 0 {
		f.errorf(p, "total weight of the destinations is 0")
	}
}

func l4DestinationProblems(f *fieldErrors, p string, routes []*networking.RouteDestination) {
	var total int64
	for i, r := range routes {
		rp := indexPath(p, i)
		if r == nil {
			f.errorf(rp, "route destination must not be null")
			continue
		}
		if r.GetDestination() == nil {
			f.errorf(fieldPath(rp, "destination"), "destination is required")
		} else {
			destinationProblems(f, fieldPath(rp, "destination"), r.GetDestination())
		}
		if r.GetWeight() < 0 {
			f.errorf(fieldPath(rp, "weight"), "weight %d must not be negative", r.GetWeight())
		}
		total += int64(r.GetWeight())
	}
	if len(routes) > 1 && total == 0 {
		f.errorf(p, "total weight of the destinations is 0")
	}
}

func tlsRouteProblems(f *fieldErrors, p string, t *networking.TLSRoute, vs *networking.VirtualService, appliesToGateway bool) {
	if t == nil {
		f.errorf(p, "tls route must not be null")
		return
	}
	if len(t.GetMatch()) == 0 {
		f.errorf(fieldPath(p, "match"), "a tls route needs at least one match")
	}
	for i, m := range t.GetMatch() {
		mp := indexPath(fieldPath(p, "match"), i)
		if m == nil {
			f.errorf(mp, "tls match must not be null")
			continue
		}
		if len(m.GetSniHosts()) == 0 {
			f.errorf(fieldPath(mp, "sniHosts"), "a tls match needs at least one sni host")
		}
		for j, sni := range m.GetSniHosts() {
			sniHostProblems(f, indexPath(fieldPath(mp, "sniHosts"), j), sni, vs, appliesToGateway)
		}
		for j, s := range m.GetDestinationSubnets() {
			f.reason(indexPath(fieldPath(mp, "destinationSubnets"), j), ipOrCIDRProblem(s))
		}
		if m.GetPort() != 0 {
			f.reason(fieldPath(mp, "port"), portProblem(int64(m.GetPort())))
		}
		labelProblems(f, fieldPath(mp, "sourceLabels"), m.GetSourceLabels())
		gatewayNameProblems(f, fieldPath(mp, "gateways"), m.GetGateways())
	}
	if len(t.GetRoute()) == 0 {
		f.errorf(fieldPath(p, "route"), "a tls route needs at least one destination")
	}
	l4DestinationProblems(f, fieldPath(p, "route"), t.GetRoute())
}

// sniHostProblems checks an SNI host is a valid name covered by one of the
// virtual service's hosts.
func sniHostProblems(f *fieldErrors, p, sni string, vs *networking.VirtualService, appliesToGateway bool) {
	var msg string
	if appliesToGateway {
		msg = gatewayBoundHostProblem(sni, true)
	} else {
		msg = wildcardDomainProblem(sni)
	}
	if msg != "" {
		if isIP(sni) {
			f.warnf(p, "sni host %q is an IP address, which goes against the SNI spec; most clients do not send it", sni)
			return
		}
		f.errorf(p, "%s", msg)
		return
	}
	for _, h := range vs.GetHosts() {
		if hostSubsetOf(sni, h) {
			return
		}
	}
	f.errorf(p, "sni host %q is not covered by any of the virtual service hosts [%s]", sni, strings.Join(vs.GetHosts(), ", "))
}

func tcpRouteProblems(f *fieldErrors, p string, t *networking.TCPRoute) {
	if t == nil {
		f.errorf(p, "tcp route must not be null")
		return
	}
	for i, m := range t.GetMatch() {
		mp := indexPath(fieldPath(p, "match"), i)
		if m == nil {
			f.errorf(mp, "tcp match must not be null")
			continue
		}
		for j, s := range m.GetDestinationSubnets() {
			f.reason(indexPath(fieldPath(mp, "destinationSubnets"), j), ipOrCIDRProblem(s))
		}
		if m.GetPort() != 0 {
			f.reason(fieldPath(mp, "port"), portProblem(int64(m.GetPort())))
		}
		labelProblems(f, fieldPath(mp, "sourceLabels"), m.GetSourceLabels())
		gatewayNameProblems(f, fieldPath(mp, "gateways"), m.GetGateways())
	}
	if len(t.GetRoute()) == 0 {
		f.errorf(fieldPath(p, "route"), "a tcp route needs at least one destination")
	}
	l4DestinationProblems(f, fieldPath(p, "route"), t.GetRoute())
}

// unreachableHTTPRules warns, as Istio does, about rules after a catch-all
// rule and matches repeated from earlier rules.
func unreachableHTTPRules(f *fieldErrors, routes []*networking.HTTPRoute) {
	type seenMatch struct {
		m    *networking.HTTPMatchRequest
		rule int
	}
	var seen []seenMatch
	catchAll := -1
	for i, r := range routes {
		if r == nil {
			continue
		}
		rp := indexPath("spec.http", i)
		if len(r.GetMatch()) == 0 {
			if catchAll >= 0 {
				f.warnf(rp, "rule is never used: rule %s before it has no match and takes all traffic", routeLabel(routes[catchAll], catchAll))
			}
			catchAll = i
			continue
		}
		dups := 0
	matches:
		for j, m := range r.GetMatch() {
			key := proto.Clone(m).(*networking.HTTPMatchRequest)
			if key != nil {
				key.Name = ""
			}
			for _, s := range seen {
				if proto.Equal(s.m, key) {
					f.warnf(indexPath(fieldPath(rp, "match"), j), "match is never used: the same match is in rule %s", routeLabel(routes[s.rule], s.rule))
					dups++
					continue matches
				}
			}
			seen = append(seen, seenMatch{m: key, rule: i})
		}
		if dups == len(r.GetMatch()) {
			f.warnf(rp, "rule is never used: all its matches are in earlier rules")
		}
	}
}

func routeLabel(r *networking.HTTPRoute, i int) string {
	if r.GetName() != "" {
		return strconv.Quote(r.GetName())
	}
	return "#" + strconv.Itoa(i)
}

// unreachableL4Rules is unreachableHTTPRules for tcp and tls routes.
func unreachableL4Rules(f *fieldErrors, p string, n int, matches func(i int) []proto.Message) {
	var seen []proto.Message
	var seenRule []int
	catchAll := -1
	for i := 0; i < n; i++ {
		rp := indexPath(p, i)
		ms := matches(i)
		if len(ms) == 0 {
			if catchAll >= 0 {
				f.warnf(rp, "rule is never used: rule #%d before it has no match and takes all traffic", catchAll)
			}
			catchAll = i
			continue
		}
		dups := 0
	next:
		for j, m := range ms {
			for k, s := range seen {
				if proto.Equal(s, m) {
					f.warnf(indexPath(fieldPath(rp, "match"), j), "match is never used: the same match is in rule #%d", seenRule[k])
					dups++
					continue next
				}
			}
			seen = append(seen, m)
			seenRule = append(seenRule, i)
		}
		if dups == len(ms) {
			f.warnf(rp, "rule is never used: all its matches are in earlier rules")
		}
	}
}

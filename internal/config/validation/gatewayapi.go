package validation

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	k8svalidation "k8s.io/apimachinery/pkg/util/validation"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/bowline-mesh/bowline/internal/config"
)

// Rules for the Gateway API kinds: the OpenAPI patterns, enums and bounds
// and the CEL rules of the v1.6 standard-channel CRDs (as the API server
// applies them), with the CRDs' own messages where they have one.

// gatewayAPIValidators maps each Gateway API kind to its rules.
var gatewayAPIValidators = map[string]kindValidator{
	config.KindGatewayClass:   validateGatewayClass,
	config.KindGateway:        validateGatewayAPIGateway,
	config.KindHTTPRoute:      validateHTTPRoute,
	config.KindGRPCRoute:      validateGRPCRoute,
	config.KindTCPRoute:       validateTCPRoute,
	config.KindTLSRoute:       validateTLSRoute,
	config.KindReferenceGrant: validateReferenceGrant,
}

var (
	gwHostnameRE        = regexp.MustCompile(`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	gwPreciseHostnameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	gwControllerRE      = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9\/\-._~%!$&'()*+,;=:]+$`)
	gwGroupRE           = regexp.MustCompile(`^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	gwKindRE            = regexp.MustCompile(`^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`)
	gwSectionNameRE     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	gwHeaderNameRE      = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+\\-.^_`|~]+$")
	gwDurationRE        = regexp.MustCompile(`^([0-9]{1,5}(h|m|s|ms)){1,4}$`)
	gwPathCharsRE       = regexp.MustCompile(`^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$`)
	gwProtocolRE        = regexp.MustCompile(`^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9]+$`)
	gwGRPCServiceRE     = regexp.MustCompile(`^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$`)
	gwGRPCMethodRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z_0-9]*$`)
)

func validateGatewayClass(obj *config.Object) []config.FieldError {
	spec := obj.Spec.(*gwv1.GatewayClassSpec)
	var f fieldErrors
	c := string(spec.ControllerName)
	switch {
	case c == "":
		f.errorf("spec.controllerName", "required")
	case len(c) > 253 || !gwControllerRE.MatchString(c):
		f.errorf("spec.controllerName", "%q must be a domain-prefixed path such as istio.io/gateway-controller", c)
	}
	if d := spec.Description; d != nil && len(*d) > 64 {
		f.errorf("spec.description", "must be at most 64 characters")
	}
	return f.list
}

func validateGatewayAPIGateway(obj *config.Object) []config.FieldError {
	spec := obj.Spec.(*gwv1.GatewaySpec)
	var f fieldErrors
	if spec.GatewayClassName == "" {
		f.errorf("spec.gatewayClassName", "required")
	} else {
		gwObjectNameProblems(&f, "spec.gatewayClassName", string(spec.GatewayClassName))
	}
	switch n := len(spec.Listeners); {
	case n == 0:
		f.errorf("spec.listeners", "at least one listener is required")
	case n > 64:
		f.errorf("spec.listeners", "at most 64 listeners are allowed, got %d", n)
	}
	names := map[gwv1.SectionName]bool{}
	type combo struct {
		port     gwv1.PortNumber
		protocol gwv1.ProtocolType
		hostname gwv1.Hostname
	}
	combos := map[combo]bool{}
	for i, l := range spec.Listeners {
		p := indexPath("spec.listeners", i)
		switch {
		case l.Name == "":
			f.errorf(fieldPath(p, "name"), "required")
		case !gwSectionNameRE.MatchString(string(l.Name)) || len(l.Name) > 253:
			f.errorf(fieldPath(p, "name"), "%q is not a valid section name: lowercase letters, digits, '-' and '.'", l.Name)
		case names[l.Name]:
			f.errorf(fieldPath(p, "name"), "Listener name must be unique within the Gateway (%q is used twice)", l.Name)
		}
		names[l.Name] = true
		if l.Port < 1 || l.Port > 65535 {
			f.errorf(fieldPath(p, "port"), "must be between 1 and 65535")
		}
		proto := l.Protocol
		switch {
		case proto == "":
			f.errorf(fieldPath(p, "protocol"), "required")
		case !gwProtocolRE.MatchString(string(proto)) || len(proto) > 255:
			f.errorf(fieldPath(p, "protocol"), "%q is not a valid protocol (HTTP, HTTPS, TLS, TCP, UDP or a domain-prefixed name)", proto)
		}
		var host gwv1.Hostname
		if l.Hostname != nil {
			host = *l.Hostname
			gwHostnameProblems(&f, fieldPath(p, "hostname"), host)
			if proto == gwv1.TCPProtocolType || proto == gwv1.UDPProtocolType {
				f.errorf(fieldPath(p, "hostname"), "hostname must not be specified for protocols ['TCP', 'UDP']")
			}
		}
		k := combo{l.Port, proto, host}
		if combos[k] {
			f.errorf(p, "Combination of port, protocol and hostname must be unique for each listener")
		}
		combos[k] = true
		gwListenerTLSProblems(&f, fieldPath(p, "tls"), proto, l.TLS)
		if ar := l.AllowedRoutes; ar != nil {
			ap := fieldPath(p, "allowedRoutes")
			if ns := ar.Namespaces; ns != nil && ns.From != nil {
				switch *ns.From {
				case gwv1.NamespacesFromAll, gwv1.NamespacesFromSame:
				case gwv1.NamespacesFromSelector:
					if ns.Selector == nil {
						f.errorf(fieldPath(ap, "namespaces.selector"), "required when from is Selector")
					}
				default:
					f.errorf(fieldPath(ap, "namespaces.from"), "unknown value %q (allowed: All, Same, Selector)", *ns.From)
				}
			}
			if len(ar.Kinds) > 8 {
				f.errorf(fieldPath(ap, "kinds"), "at most 8 kinds are allowed")
			}
			for j, rk := range ar.Kinds {
				kp := indexPath(fieldPath(ap, "kinds"), j)
				if rk.Group != nil {
					gwGroupProblems(&f, fieldPath(kp, "group"), string(*rk.Group))
				}
				gwKindProblems(&f, fieldPath(kp, "kind"), string(rk.Kind))
			}
		}
	}
	for i, a := range spec.Addresses {
		if a.Value == "" {
			f.errorf(fieldPath(indexPath("spec.addresses", i), "value"), "required")
		}
	}
	return f.list
}

func gwListenerTLSProblems(f *fieldErrors, p string, proto gwv1.ProtocolType, tls *gwv1.ListenerTLSConfig) {
	switch proto {
	case gwv1.HTTPProtocolType, gwv1.TCPProtocolType, gwv1.UDPProtocolType:
		if tls != nil {
			f.errorf(p, "tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']")
		}
		return
	case gwv1.HTTPSProtocolType:
		if tls == nil {
			f.errorf(p, "required for protocol HTTPS")
			return
		}
		if tls.Mode != nil && *tls.Mode != gwv1.TLSModeTerminate {
			f.errorf(fieldPath(p, "mode"), "tls mode must be Terminate for protocol HTTPS")
		}
	case gwv1.TLSProtocolType:
		if tls == nil || tls.Mode == nil {
			f.errorf(fieldPath(p, "mode"), "tls mode must be set for protocol TLS")
			return
		}
	}
	if tls == nil {
		return
	}
	mode := gwv1.TLSModeTerminate
	if tls.Mode != nil {
		mode = *tls.Mode
	}
	switch mode {
	case gwv1.TLSModeTerminate:
		if len(tls.CertificateRefs) == 0 && len(tls.Options) == 0 {
			f.errorf(p, "certificateRefs or options must be specified when mode is Terminate")
		}
	case gwv1.TLSModePassthrough:
	default:
		f.errorf(fieldPath(p, "mode"), "unknown value %q (allowed: Terminate, Passthrough)", mode)
	}
	if len(tls.CertificateRefs) > 64 {
		f.errorf(fieldPath(p, "certificateRefs"), "at most 64 certificate references are allowed")
	}
	for i, c := range tls.CertificateRefs {
		cp := indexPath(fieldPath(p, "certificateRefs"), i)
		if c.Name == "" {
			f.errorf(fieldPath(cp, "name"), "required")
		}
		if c.Group != nil {
			gwGroupProblems(f, fieldPath(cp, "group"), string(*c.Group))
		}
		if c.Kind != nil {
			gwKindProblems(f, fieldPath(cp, "kind"), string(*c.Kind))
		}
	}
}

func gwHostnameProblems(f *fieldErrors, p string, h gwv1.Hostname) {
	if len(h) > 253 || !gwHostnameRE.MatchString(string(h)) {
		f.errorf(p, "%q is not a valid hostname: lowercase DNS name, optionally with a leading \"*.\" (no IP addresses)", h)
	}
}

func gwPreciseHostnameProblems(f *fieldErrors, p string, h gwv1.PreciseHostname) {
	if len(h) > 253 || !gwPreciseHostnameRE.MatchString(string(h)) {
		f.errorf(p, "%q is not a valid hostname: lowercase DNS name without wildcard", h)
	}
}

func gwGroupProblems(f *fieldErrors, p, g string) {
	if len(g) > 253 || !gwGroupRE.MatchString(g) {
		f.errorf(p, "%q is not a valid API group", g)
	}
}

func gwKindProblems(f *fieldErrors, p, k string) {
	if k == "" {
		f.errorf(p, "required")
	} else if len(k) > 63 || !gwKindRE.MatchString(k) {
		f.errorf(p, "%q is not a valid kind", k)
	}
}

func gwObjectNameProblems(f *fieldErrors, p, n string) {
	if n == "" {
		f.errorf(p, "required")
	} else if len(n) > 253 {
		f.errorf(p, "must be at most 253 characters")
	}
}

func gwNamespaceProblems(f *fieldErrors, p, ns string) {
	for _, msg := range k8svalidation.IsDNS1123Label(ns) {
		f.errorf(p, "%q is not a valid namespace: %s", ns, msg)
	}
}

func gwDurationProblems(f *fieldErrors, p string, d *gwv1.Duration) (time.Duration, bool) {
	if d == nil {
		return 0, false
	}
	if !gwDurationRE.MatchString(string(*d)) {
		f.errorf(p, "%q is not a Gateway API duration (GEP-2257: up to 4 parts of 1-5 digits with h, m, s or ms, like \"10s\" or \"1m30s\")", *d)
		return 0, false
	}
	v, err := time.ParseDuration(string(*d))
	if err != nil {
		f.errorf(p, "invalid duration %q", *d)
		return 0, false
	}
	return v, true
}

// parentRefsProblems checks a route's parentRefs: at most 32, and the CEL
// rule that several references to one parent name distinct sections or
// ports.
func parentRefsProblems(f *fieldErrors, refs []gwv1.ParentReference) {
	if len(refs) > 32 {
		f.errorf("spec.parentRefs", "at most 32 parent references are allowed")
	}
	type parent struct{ group, kind, ns, name string }
	type section struct {
		name string
		port int32
	}
	seen := map[parent][]section{}
	for i, r := range refs {
		p := indexPath("spec.parentRefs", i)
		gwObjectNameProblems(f, fieldPath(p, "name"), string(r.Name))
		if r.Group != nil {
			gwGroupProblems(f, fieldPath(p, "group"), string(*r.Group))
		}
		if r.Kind != nil {
			gwKindProblems(f, fieldPath(p, "kind"), string(*r.Kind))
		}
		if r.Namespace != nil {
			gwNamespaceProblems(f, fieldPath(p, "namespace"), string(*r.Namespace))
		}
		if r.SectionName != nil && !gwSectionNameRE.MatchString(string(*r.SectionName)) {
			f.errorf(fieldPath(p, "sectionName"), "%q is not a valid section name", *r.SectionName)
		}
		if r.Port != nil && (*r.Port < 1 || *r.Port > 65535) {
			f.errorf(fieldPath(p, "port"), "must be between 1 and 65535")
		}
		k := parent{derefOr(r.Group, gwv1.GroupName), derefOr(r.Kind, "Gateway"), derefOr(r.Namespace, ""), string(r.Name)}
		s := section{name: derefOr(r.SectionName, "")}
		if r.Port != nil {
			s.port = *r.Port
		}
		prev := seen[k]
		if len(prev) > 0 {
			for _, q := range append(prev, s) {
				if q == (section{}) {
					f.errorf(p, "sectionName or port must be specified when parentRefs includes 2 or more references to the same parent")
					break
				}
			}
			if slices.Contains(prev, s) {
				f.errorf(p, "sectionName or port must be unique when parentRefs includes 2 or more references to the same parent")
			}
		}
		seen[k] = append(prev, s)
	}
}

func derefOr[T ~string](p *T, def string) string {
	if p == nil {
		return def
	}
	return string(*p)
}

func routeHostnamesProblems(f *fieldErrors, hosts []gwv1.Hostname) {
	if len(hosts) > 16 {
		f.errorf("spec.hostnames", "at most 16 hostnames are allowed")
	}
	for i, h := range hosts {
		gwHostnameProblems(f, indexPath("spec.hostnames", i), h)
	}
}

// backendRefProblems checks one backend reference: a Service (the
// default kind) needs a port.
func backendRefProblems(f *fieldErrors, p string, b gwv1.BackendObjectReference) {
	gwObjectNameProblems(f, fieldPath(p, "name"), string(b.Name))
	group, kind := derefOr(b.Group, ""), derefOr(b.Kind, "Service")
	gwGroupProblems(f, fieldPath(p, "group"), group)
	gwKindProblems(f, fieldPath(p, "kind"), kind)
	if b.Namespace != nil {
		gwNamespaceProblems(f, fieldPath(p, "namespace"), string(*b.Namespace))
	}
	if b.Port == nil {
		if group == "" && kind == "Service" {
			f.errorf(fieldPath(p, "port"), "Must have port for Service reference")
		}
	} else if *b.Port < 1 || *b.Port > 65535 {
		f.errorf(fieldPath(p, "port"), "must be between 1 and 65535")
	}
}

func weightProblems(f *fieldErrors, p string, w *int32) {
	if w != nil && (*w < 0 || *w > 1000000) {
		f.errorf(fieldPath(p, "weight"), "must be between 0 and 1000000")
	}
}

func headerFilterProblems(f *fieldErrors, p string, h *gwv1.HTTPHeaderFilter) {
	seen := map[string]string{}
	check := func(field string, i int, name string) {
		hp := fieldPath(indexPath(fieldPath(p, field), i), "name")
		if field == "remove" {
			hp = indexPath(fieldPath(p, field), i)
		}
		if !gwHeaderNameRE.MatchString(name) || len(name) > 256 {
			f.errorf(hp, "%q is not a valid header name", name)
			return
		}
		key := strings.ToLower(name)
		if prev, ok := seen[key]; ok && prev == field {
			f.errorf(hp, "header %q is listed twice in %s (names are case-insensitive)", name, field)
		}
		seen[key] = field
	}
	for _, l := range []struct {
		field string
		list  []gwv1.HTTPHeader
	}{{"set", h.Set}, {"add", h.Add}} {
		if len(l.list) > 16 {
			f.errorf(fieldPath(p, l.field), "at most 16 headers are allowed")
		}
		for i, hd := range l.list {
			check(l.field, i, string(hd.Name))
			if len(hd.Value) > 4096 {
				f.errorf(fieldPath(indexPath(fieldPath(p, l.field), i), "value"), "must be at most 4096 characters")
			}
		}
	}
	if len(h.Remove) > 16 {
		f.errorf(fieldPath(p, "remove"), "at most 16 headers are allowed")
	}
	for i, n := range h.Remove {
		check("remove", i, n)
	}
}

func mirrorProblems(f *fieldErrors, p string, m *gwv1.HTTPRequestMirrorFilter) {
	backendRefProblems(f, fieldPath(p, "backendRef"), m.BackendRef)
	if m.Percent != nil && m.Fraction != nil {
		f.errorf(p, "Only one of percent or fraction may be specified in HTTPRequestMirrorFilter")
	}
	if m.Percent != nil && (*m.Percent < 0 || *m.Percent > 100) {
		f.errorf(fieldPath(p, "percent"), "must be between 0 and 100")
	}
	if fr := m.Fraction; fr != nil {
		den := int32(100)
		if fr.Denominator != nil {
			den = *fr.Denominator
		}
		switch {
		case fr.Numerator < 0:
			f.errorf(fieldPath(p, "fraction.numerator"), "must be at least 0")
		case den < 1:
			f.errorf(fieldPath(p, "fraction.denominator"), "must be at least 1")
		case fr.Numerator > den:
			f.errorf(fieldPath(p, "fraction"), "numerator must be less than or equal to denominator")
		}
	}
}

func validateReferenceGrant(obj *config.Object) []config.FieldError {
	spec := obj.Spec.(*gwv1.ReferenceGrantSpec)
	var f fieldErrors
	if n := len(spec.From); n == 0 || n > 16 {
		f.errorf("spec.from", "must list between 1 and 16 entries")
	}
	if n := len(spec.To); n == 0 || n > 16 {
		f.errorf("spec.to", "must list between 1 and 16 entries")
	}
	for i, fr := range spec.From {
		p := indexPath("spec.from", i)
		gwGroupProblems(&f, fieldPath(p, "group"), string(fr.Group))
		gwKindProblems(&f, fieldPath(p, "kind"), string(fr.Kind))
		if fr.Namespace == "" {
			f.errorf(fieldPath(p, "namespace"), "required")
		} else {
			gwNamespaceProblems(&f, fieldPath(p, "namespace"), string(fr.Namespace))
		}
	}
	for i, to := range spec.To {
		p := indexPath("spec.to", i)
		gwGroupProblems(&f, fieldPath(p, "group"), string(to.Group))
		gwKindProblems(&f, fieldPath(p, "kind"), string(to.Kind))
	}
	return f.list
}

func validateTCPRoute(obj *config.Object) []config.FieldError {
	spec := obj.Spec.(*gwv1.TCPRouteSpec)
	var f fieldErrors
	parentRefsProblems(&f, spec.ParentRefs)
	l4RulesProblems(&f, len(spec.Rules), func(i int) []gwv1.BackendRef { return spec.Rules[i].BackendRefs })
	return f.list
}

func validateTLSRoute(obj *config.Object) []config.FieldError {
	spec := obj.Spec.(*gwv1.TLSRouteSpec)
	var f fieldErrors
	parentRefsProblems(&f, spec.ParentRefs)
	if len(spec.Hostnames) == 0 {
		f.errorf("spec.hostnames", "at least one hostname is required")
	}
	routeHostnamesProblems(&f, spec.Hostnames)
	l4RulesProblems(&f, len(spec.Rules), func(i int) []gwv1.BackendRef { return spec.Rules[i].BackendRefs })
	return f.list
}

func l4RulesProblems(f *fieldErrors, n int, refs func(int) []gwv1.BackendRef) {
	if n != 1 {
		f.errorf("spec.rules", "exactly one rule is required, got %d", n)
	}
	for i := range n {
		rp := indexPath("spec.rules", i)
		br := refs(i)
		if len(br) == 0 || len(br) > 16 {
			f.errorf(fieldPath(rp, "backendRefs"), "must list between 1 and 16 backends")
		}
		for j, b := range br {
			bp := indexPath(fieldPath(rp, "backendRefs"), j)
			backendRefProblems(f, bp, b.BackendObjectReference)
			weightProblems(f, bp, b.Weight)
		}
	}
}

// describe names a filter type for messages.
func describe[T ~string](t T) string { return fmt.Sprintf("%q", string(t)) }

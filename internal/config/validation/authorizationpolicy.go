package validation

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	security "istio.io/api/security/v1beta1"

	"github.com/bowline-mesh/bowline/internal/config"
)

// validateAuthorizationPolicy applies Istio's rules for AuthorizationPolicy
// (security.istio.io): the webhook's semantic checks and the CRD's schema
// constraints that the loader does not already enforce.
func validateAuthorizationPolicy(obj *config.Object) []config.FieldError {
	ap, ok := obj.Spec.(*security.AuthorizationPolicy)
	if !ok {
		return []config.FieldError{{Path: "spec", Reason: fmt.Sprintf("unexpected spec type %T", obj.Spec)}}
	}
	r := &fieldErrors{}
	authzCheckDryRun(r, obj, ap)
	secCheckPolicyTarget(r, ap.GetSelector(), ap.GetTargetRef(), ap.GetTargetRefs())
	authzCheckAction(r, obj, ap)
	if len(ap.GetRules()) > 512 {
		r.errorf("spec.rules", "at most 512 rules are allowed, got %d", len(ap.GetRules()))
	}
	for i, rule := range ap.GetRules() {
		authzCheckRule(r, obj, ap.GetAction(), indexPath("spec.rules", i), rule)
	}
	return r.list
}

// authzCheckDryRun checks the istio.io/dry-run annotation: ALLOW and DENY
// policies only, with a boolean value.
func authzCheckDryRun(r *fieldErrors, obj *config.Object, ap *security.AuthorizationPolicy) {
	val, ok := obj.Meta.Annotations[secDryRunAnnotation]
	if !ok {
		return
	}
	path := keyPath("metadata.annotations", secDryRunAnnotation)
	switch ap.GetAction() {
	case security.AuthorizationPolicy_ALLOW, security.AuthorizationPolicy_DENY:
		if _, err := strconv.ParseBool(val); err != nil {
			r.errorf(path, "%q is not a boolean", val)
		}
	default:
		r.errorf(path, "dry-run is only supported for action ALLOW and DENY, not %s", ap.GetAction())
	}
}

// authzCheckAction checks action against provider and rules.
func authzCheckAction(r *fieldErrors, obj *config.Object, ap *security.AuthorizationPolicy) {
	action := ap.GetAction()
	provider := ap.GetProvider()
	switch action {
	case security.AuthorizationPolicy_CUSTOM:
		if provider == nil {
			r.errorf("spec.provider", "required when action is CUSTOM")
		} else if provider.GetName() == "" {
			r.errorf("spec.provider.name", "required when action is CUSTOM")
		}
	default:
		if provider != nil {
			r.errorf("spec.provider", "only allowed with action CUSTOM, not %s", action)
		}
	}
	if (action == security.AuthorizationPolicy_CUSTOM || action == security.AuthorizationPolicy_DENY) && len(ap.GetRules()) == 0 {
		const reason = "a %s policy without rules never applies; add an empty rule {} to apply it to every request"
		if secWritten(obj, "spec.rules") {
			// Istio accepts an explicit empty list (it only rejects a missing one); it is still a no-op.
			r.warnf("spec.rules", reason, action)
		} else {
			r.errorf("spec.rules", reason, action)
		}
	}
}

// authzCheckRule checks one rule. It also warns, as Istio does, when a DENY
// rule uses only HTTP attributes: on TCP traffic those cannot be evaluated
// and the rule denies everything.
func authzCheckRule(r *fieldErrors, obj *config.Object, action security.AuthorizationPolicy_Action, path string, rule *security.Rule) {
	if rule == nil {
		r.errorf(path, "rule must not be null")
		return
	}
	custom := action == security.AuthorizationPolicy_CUSTOM
	var fromExists, toExists, tcpInFrom, tcpInTo bool

	if len(rule.GetFrom()) == 0 && secWritten(obj, path+".from") {
		r.errorf(path+".from", "must not be empty; omit it to match any source")
	}
	if len(rule.GetFrom()) > 512 {
		r.errorf(path+".from", "at most 512 sources are allowed, got %d", len(rule.GetFrom()))
	}
	for j, from := range rule.GetFrom() {
		fp := indexPath(path+".from", j)
		switch {
		case from == nil:
			r.errorf(fp, "must not be null")
		case from.GetSource() == nil:
			r.errorf(fp+".source", "required")
		default:
			fromExists = true
			if authzCheckSource(r, fp+".source", from.GetSource(), custom) {
				tcpInFrom = true
			}
		}
	}

	if len(rule.GetTo()) == 0 && secWritten(obj, path+".to") {
		r.errorf(path+".to", "must not be empty; omit it to match any operation")
	}
	for j, to := range rule.GetTo() {
		tp := indexPath(path+".to", j)
		switch {
		case to == nil:
			r.errorf(tp, "must not be null")
		case to.GetOperation() == nil:
			r.errorf(tp+".operation", "required")
		default:
			toExists = true
			if authzCheckOperation(r, tp+".operation", to.GetOperation()) {
				tcpInTo = true
			}
		}
	}

	for j, cond := range rule.GetWhen() {
		authzCheckCondition(r, indexPath(path+".when", j), cond, custom)
	}

	if action == security.AuthorizationPolicy_DENY && ((fromExists && !toExists && !tcpInFrom) || (toExists && !tcpInTo)) {
		r.warnf(path, "this DENY rule uses only HTTP attributes, so it denies all TCP traffic to the selected workloads; set ports to scope it")
	}
}

// authzSourceLists names the list fields of a Source in document order.
func authzSourceLists(src *security.Source) []struct {
	name   string
	values []string
} {
	return []struct {
		name   string
		values []string
	}{
		{"principals", src.GetPrincipals()},
		{"notPrincipals", src.GetNotPrincipals()},
		{"requestPrincipals", src.GetRequestPrincipals()},
		{"notRequestPrincipals", src.GetNotRequestPrincipals()},
		{"namespaces", src.GetNamespaces()},
		{"notNamespaces", src.GetNotNamespaces()},
		{"serviceAccounts", src.GetServiceAccounts()},
		{"notServiceAccounts", src.GetNotServiceAccounts()},
		{"ipBlocks", src.GetIpBlocks()},
		{"notIpBlocks", src.GetNotIpBlocks()},
		{"remoteIpBlocks", src.GetRemoteIpBlocks()},
		{"notRemoteIpBlocks", src.GetNotRemoteIpBlocks()},
		{"trustDomains", src.GetTrustDomains()},
		{"notTrustDomains", src.GetNotTrustDomains()},
	}
}

// authzCustomUnsupportedSource are Source fields Istio does not support with action CUSTOM.
var authzCustomUnsupportedSource = map[string]bool{
	"principals": true, "notPrincipals": true,
	"requestPrincipals": true, "notRequestPrincipals": true,
	"namespaces": true, "notNamespaces": true,
	"serviceAccounts": true, "notServiceAccounts": true,
}

// authzCheckSource checks a source and reports whether it uses attributes
// that are available on TCP traffic.
func authzCheckSource(r *fieldErrors, path string, src *security.Source, custom bool) (tcp bool) {
	lists := authzSourceLists(src)
	empty := true
	for _, l := range lists {
		if len(l.values) > 0 {
			empty = false
		}
	}
	if empty {
		r.errorf(path, "must set at least one field; omit the source to match any source")
		return false
	}
	if len(src.GetServiceAccounts())+len(src.GetNotServiceAccounts()) > 0 &&
		len(src.GetPrincipals())+len(src.GetNotPrincipals())+len(src.GetNamespaces())+len(src.GetNotNamespaces()) > 0 {
		field := "serviceAccounts"
		if len(src.GetServiceAccounts()) == 0 {
			field = "notServiceAccounts"
		}
		r.errorf(path+"."+field, "cannot be set together with principals or namespaces")
	}
	for _, l := range lists {
		if len(l.values) == 0 {
			continue
		}
		lp := path + "." + l.name
		if custom && authzCustomUnsupportedSource[l.name] {
			r.errorf(lp, "not supported with action CUSTOM")
		}
		switch l.name {
		case "requestPrincipals", "notRequestPrincipals", "trustDomains", "notTrustDomains":
			// HTTP-only (request principals) or not affecting the TCP check (trust domains, as in Istio).
		default:
			tcp = true
		}
		if (l.name == "serviceAccounts" || l.name == "notServiceAccounts") && len(l.values) > 16 {
			r.errorf(lp, "at most 16 service accounts are allowed, got %d", len(l.values))
		}
		for k, v := range l.values {
			vp := indexPath(lp, k)
			if v == "" {
				r.errorf(vp, "must not be empty")
				continue
			}
			switch l.name {
			case "ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks":
				if p := secIPOrCIDRProblem(v); p != "" {
					r.errorf(vp, "%s", p)
				}
			case "serviceAccounts", "notServiceAccounts":
				if p := authzServiceAccountProblem(v); p != "" {
					r.errorf(vp, "%s", p)
				}
			default:
				if p := secWildcardProblem(v); p != "" {
					r.warnf(vp, "%s", p)
				}
			}
		}
	}
	return tcp
}

// authzServiceAccountProblem checks "<serviceaccount>" or "<namespace>/<serviceaccount>".
func authzServiceAccountProblem(v string) string {
	if strings.Contains(v, "*") {
		return fmt.Sprintf("%q: wildcards are not allowed in service accounts", v)
	}
	if len(v) > 320 {
		return fmt.Sprintf("must be at most 320 characters, got %d", len(v))
	}
	if strings.Count(v, "/") > 1 {
		return fmt.Sprintf("%q: expected <serviceaccount> or <namespace>/<serviceaccount>", v)
	}
	if ns, sa, ok := strings.Cut(v, "/"); ok && (ns == "" || sa == "") {
		return fmt.Sprintf("%q: expected <serviceaccount> or <namespace>/<serviceaccount>, with neither part empty", v)
	}
	return ""
}

// authzHTTPMethods are the methods a request can carry; matching is case-sensitive.
var authzHTTPMethods = map[string]bool{
	"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true,
	"DELETE": true, "CONNECT": true, "OPTIONS": true, "TRACE": true,
}

// authzCheckOperation checks an operation and reports whether it uses ports
// (the only operation attribute available on TCP traffic).
func authzCheckOperation(r *fieldErrors, path string, op *security.Operation) (tcp bool) {
	lists := []struct {
		name   string
		values []string
	}{
		{"hosts", op.GetHosts()},
		{"notHosts", op.GetNotHosts()},
		{"ports", op.GetPorts()},
		{"notPorts", op.GetNotPorts()},
		{"methods", op.GetMethods()},
		{"notMethods", op.GetNotMethods()},
		{"paths", op.GetPaths()},
		{"notPaths", op.GetNotPaths()},
	}
	empty := true
	for _, l := range lists {
		if len(l.values) > 0 {
			empty = false
		}
	}
	if empty {
		r.errorf(path, "must set at least one field; omit the operation to match any operation")
		return false
	}
	for _, l := range lists {
		lp := path + "." + l.name
		for k, v := range l.values {
			vp := indexPath(lp, k)
			if v == "" {
				r.errorf(vp, "must not be empty")
				continue
			}
			switch l.name {
			case "ports", "notPorts":
				tcp = true
				if p := secPortProblem(v); p != "" {
					r.errorf(vp, "%s", p)
				} else if n, _ := strconv.Atoi(v); n == 0 {
					r.warnf(vp, "port 0 never matches a connection")
				}
			case "methods", "notMethods":
				if up := strings.ToUpper(v); up != v && authzHTTPMethods[up] {
					r.warnf(vp, "methods match case-sensitively; %q never matches, use %q", v, up)
				} else if p := secWildcardProblem(v); p != "" {
					r.warnf(vp, "%s", p)
				}
			case "paths", "notPaths":
				authzCheckPath(r, vp, v)
			default:
				if p := secWildcardProblem(v); p != "" {
					r.warnf(vp, "%s", p)
				}
			}
		}
	}
	return tcp
}

// authzPathLiteralRE is an RFC 3986 pchar run: what a literal path-template segment may hold.
var authzPathLiteralRE = regexp.MustCompile(`^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$`)

// authzCheckPath checks one paths/notPaths entry. Paths holding {*} or {**}
// are Envoy URI templates: operators are whole segments, {**} is the last
// operator, and other segments are plain pchar literals. Other paths use
// Istio's string matching (exact, prefix*, *suffix, *).
func authzCheckPath(r *fieldErrors, path, v string) {
	if !strings.Contains(v, "{*}") && !strings.Contains(v, "{**}") {
		if p := secWildcardProblem(v); p != "" {
			r.warnf(path, "%s", p)
		} else if !strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "*") {
			r.warnf(path, "%q does not start with '/' and never matches a request path", v)
		}
		return
	}
	seenAny := false
	for _, seg := range strings.Split(strings.Trim(v, "/"), "/") {
		switch {
		case (seg == "{*}" || seg == "{**}") && seenAny:
			r.errorf(path, "invalid path template %q: {**} must be the last operator", v)
			return
		case seg == "{**}":
			seenAny = true
		case seg == "{*}":
		case strings.ContainsAny(seg, "{}"):
			r.errorf(path, "invalid path template %q: '{' and '}' are only allowed as whole {*} or {**} segments", v)
			return
		case !authzPathLiteralRE.MatchString(seg):
			r.errorf(path, "invalid path template %q: segment %q must be a non-empty literal without '*'", v, seg)
			return
		}
	}
}

// authzCheckCondition checks one `when` condition: a supported attribute,
// values or notValues present, and each value in the attribute's format.
func authzCheckCondition(r *fieldErrors, path string, cond *security.Condition, custom bool) {
	if cond == nil {
		r.errorf(path, "must not be null")
		return
	}
	key := cond.GetKey()
	if key == "" {
		r.errorf(path+".key", "required")
		return
	}
	if len(cond.GetValues()) == 0 && len(cond.GetNotValues()) == 0 {
		r.errorf(path, "at least one of values or notValues is required for key %s", key)
		return
	}
	if custom && (key == "source.namespace" || key == "source.serviceAccount" || key == "source.principal" || strings.HasPrefix(key, "request.auth.")) {
		r.errorf(path+".key", "%s is not supported with action CUSTOM", key)
	}
	check, problem := authzAttribute(key)
	if problem != "" {
		r.errorf(path+".key", "%s", problem)
		return
	}
	for _, l := range []struct {
		name   string
		values []string
	}{{"values", cond.GetValues()}, {"notValues", cond.GetNotValues()}} {
		for k, v := range l.values {
			vp := indexPath(path+"."+l.name, k)
			if v == "" {
				r.errorf(vp, "must not be empty")
				continue
			}
			if check != nil {
				if p := check(v); p != "" {
					r.errorf(vp, "%s", p)
				}
			}
		}
	}
}

// authzAttribute looks up a condition key in Istio's supported attributes
// (https://istio.io/latest/docs/reference/config/security/conditions/). It
// returns the format check for its values (nil when any string goes), or a
// problem when the key is not supported.
func authzAttribute(key string) (check func(string) string, problem string) {
	mapKey := func(prefix string) string {
		if rest := key[len(prefix):]; len(rest) > 2 && rest[0] == '[' && rest[len(rest)-1] == ']' {
			return ""
		}
		return fmt.Sprintf("%q must have the form %s[<name>]", key, prefix)
	}
	switch {
	case strings.HasPrefix(key, "request.headers"):
		return nil, mapKey("request.headers")
	case strings.HasPrefix(key, "request.experimental.inline.headers"):
		return nil, mapKey("request.experimental.inline.headers")
	case strings.HasPrefix(key, "request.auth.claims"):
		return nil, mapKey("request.auth.claims")
	case strings.HasPrefix(key, "experimental.envoy.filters."):
		if open := strings.Index(key, "["); open > 0 && open < len(key)-2 && strings.HasSuffix(key, "]") {
			return nil, ""
		}
		return nil, fmt.Sprintf("%q must have the form experimental.envoy.filters.<filter>[<key>]", key)
	case strings.HasPrefix(key, "destination.labels"):
		return nil, fmt.Sprintf("attribute %s is not supported; use the policy's workload selector", key)
	}
	switch key {
	case "source.ip", "remote.ip", "destination.ip":
		return secIPOrCIDRProblem, ""
	case "destination.port":
		return secPortProblem, ""
	case "source.serviceAccount":
		return authzServiceAccountProblem, ""
	case "source.namespace", "source.principal", "request.auth.principal", "request.auth.audiences",
		"request.auth.presenter", "connection.sni":
		return nil, ""
	case "destination.namespace":
		return nil, "attribute destination.namespace is not supported; the policy's metadata.namespace selects the namespace"
	case "destination.name", "destination.user":
		return nil, fmt.Sprintf("attribute %s was only supported in v1alpha1 policies", key)
	}
	return nil, fmt.Sprintf("unknown attribute %q; supported: request.headers[...], source.ip, remote.ip, source.namespace, "+
		"source.principal, source.serviceAccount, request.auth.principal, request.auth.audiences, request.auth.presenter, "+
		"request.auth.claims[...], destination.ip, destination.port, connection.sni, experimental.envoy.filters.*", key)
}

package validation

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/bowline-mesh/bowline/internal/config"
)

// Helpers specific to the security, telemetry and extension kinds
// (AuthorizationPolicy, PeerAuthentication, RequestAuthentication,
// Telemetry, EnvoyFilter, ProxyConfig); the collector, paths, durations and
// the rest are shared with the networking kinds in common.go.

// secWritten reports whether the document spelled out path (for example an
// explicit empty list `rules: []`), which decoding alone cannot tell from an
// absent field.
func secWritten(obj *config.Object, path string) bool {
	_, ok := obj.Lines[path]
	return ok
}

// secDryRunAnnotation is Istio's annotation for evaluating an
// AuthorizationPolicy without enforcing it.
const secDryRunAnnotation = "istio.io/dry-run"

// secCheckDryRun rejects the dry-run annotation on kinds other than
// AuthorizationPolicy, as Istio does for every kind.
func secCheckDryRun(r *fieldErrors, obj *config.Object) {
	if _, ok := obj.Meta.Annotations[secDryRunAnnotation]; ok {
		r.errorf(keyPath("metadata.annotations", secDryRunAnnotation), "annotation %s is only supported on AuthorizationPolicy", secDryRunAnnotation)
	}
}

// secCheckSelector checks a WorkloadSelector (selector.matchLabels) at path.
func secCheckSelector(r *fieldErrors, path string, sel *typev1beta1.WorkloadSelector) {
	if sel == nil {
		return
	}
	secCheckLabels(r, path, path+".matchLabels", sel.GetMatchLabels(), 4096)
}

// secTargetKind is a kind a policy may target.
type secTargetKind struct{ group, kind string }

func (k secTargetKind) String() string {
	if k.group == "" {
		return k.kind
	}
	return k.group + "/" + k.kind
}

// secTargetKinds are the kinds Istio's policies accept in targetRef(s).
var secTargetKinds = []secTargetKind{
	{"", "Service"},
	{"networking.istio.io", "ServiceEntry"},
	{"gateway.networking.k8s.io", "Gateway"},
	{"gateway.networking.k8s.io", "GatewayClass"},
}

var (
	secRefGroupRE = regexp.MustCompile(`^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	secRefKindRE  = regexp.MustCompile(`^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`)
)

// secCheckTargetRef checks one PolicyTargetReference at path.
func secCheckTargetRef(r *fieldErrors, path string, ref *typev1beta1.PolicyTargetReference) {
	if ref == nil {
		r.errorf(path, "target reference must not be null")
		return
	}
	switch {
	case ref.GetName() == "":
		r.errorf(path+".name", "required")
	case len(ref.GetName()) > 253:
		r.errorf(path+".name", "must be at most 253 characters")
	}
	if ref.GetNamespace() != "" {
		r.errorf(path+".namespace", "cross-namespace references are not supported; leave namespace empty")
	}
	group, kind := ref.GetGroup(), ref.GetKind()
	if len(group) > 253 || !secRefGroupRE.MatchString(group) {
		r.errorf(path+".group", "%q is not a valid API group", group)
	}
	switch {
	case kind == "":
		r.errorf(path+".kind", "required")
		return
	case len(kind) > 63 || !secRefKindRE.MatchString(kind):
		r.errorf(path+".kind", "%q is not a valid kind", kind)
		return
	}
	if group == "core" {
		group = ""
	}
	for _, k := range secTargetKinds {
		if k.group == group && k.kind == kind {
			return
		}
	}
	names := make([]string, len(secTargetKinds))
	for i, k := range secTargetKinds {
		names[i] = k.String()
	}
	r.errorf(path+".kind", "cannot target %s; supported: %s", secTargetKind{group, kind}, strings.Join(names, ", "))
}

// secCheckPolicyTarget checks selector, targetRef and targetRefs of a policy
// kind: at most one of them, each well-formed.
func secCheckPolicyTarget(r *fieldErrors, sel *typev1beta1.WorkloadSelector, ref *typev1beta1.PolicyTargetReference, refs []*typev1beta1.PolicyTargetReference) {
	set := 0
	if sel != nil {
		set++
	}
	if ref != nil {
		set++
	}
	if len(refs) > 0 {
		set++
	}
	if set > 1 {
		path := "spec.targetRefs"
		if len(refs) == 0 {
			path = "spec.targetRef"
		}
		r.errorf(path, "only one of selector, targetRef and targetRefs may be set")
	}
	secCheckSelector(r, "spec.selector", sel)
	if ref != nil {
		secCheckTargetRef(r, "spec.targetRef", ref)
	}
	secCheckTargetRefs(r, "spec.targetRefs", refs)
}

// secCheckTargetRefs checks a targetRefs list at path.
func secCheckTargetRefs(r *fieldErrors, path string, refs []*typev1beta1.PolicyTargetReference) {
	if len(refs) > 16 {
		r.errorf(path, "at most 16 target references are allowed, got %d", len(refs))
	}
	for i, ref := range refs {
		secCheckTargetRef(r, indexPath(path, i), ref)
	}
}

// secIPOrCIDRProblem explains why v is neither an IP address nor a CIDR range, or returns "".
func secIPOrCIDRProblem(v string) string {
	if strings.Contains(v, "/") {
		if _, err := netip.ParsePrefix(v); err != nil {
			return fmt.Sprintf("%q is not a valid CIDR range", v)
		}
		return ""
	}
	if _, err := netip.ParseAddr(v); err != nil {
		return fmt.Sprintf("%q is not an IP address or CIDR range", v)
	}
	return ""
}

// secPortProblem explains why a port written as a string (authorization
// policies, conditions) is not a port number, or returns "". Port 0 is
// accepted as Istio does; callers warn about it.
func secPortProblem(v string) string {
	p, err := strconv.ParseUint(v, 10, 32)
	if err != nil || p > 65535 {
		return fmt.Sprintf("%q is not a port number (0-65535)", v)
	}
	return ""
}

// secHeaderNameRE is the header name syntax Istio accepts where it names a header to set.
var secHeaderNameRE = regexp.MustCompile(`^[-_A-Za-z0-9]+$`)

// secWildcardProblem explains why v uses '*' in a way Istio's string
// matching does not (it supports exact, "prefix*", "*suffix" and "*"), or
// returns "". Such a '*' is matched literally.
func secWildcardProblem(v string) string {
	if v == "*" || !strings.Contains(v, "*") {
		return ""
	}
	inner := v
	if strings.HasPrefix(inner, "*") {
		inner = inner[1:]
	} else if strings.HasSuffix(inner, "*") {
		inner = inner[:len(inner)-1]
	}
	if strings.Contains(inner, "*") {
		return fmt.Sprintf("%q: '*' is a wildcard only as the first or last character (exact, prefix*, *suffix or *); others match a literal '*'", v)
	}
	return ""
}

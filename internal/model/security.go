package model

import (
	"strconv"

	security "istio.io/api/security/v1beta1"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// AnnotationDryRun is Istio's annotation that turns an AuthorizationPolicy
// into a dry run: evaluated and logged, never enforced.
const AnnotationDryRun = "istio.io/dry-run"

// AuthorizationPolicy is a validated AuthorizationPolicy with its identity.
type AuthorizationPolicy struct {
	Name, Namespace string
	// DryRun is the istio.io/dry-run annotation parsed as a bool.
	DryRun bool
	Spec   *security.AuthorizationPolicy
}

// RequestAuthentication is a validated RequestAuthentication with its identity.
type RequestAuthentication struct {
	Name, Namespace string
	Spec            *security.RequestAuthentication
}

// securityConfig holds the security.istio.io objects of a snapshot that
// generators read (PeerAuthentication: peerauthn.go).
type securityConfig struct {
	authzPolicies []*AuthorizationPolicy
	requestAuthns []*RequestAuthentication
	peerAuthns    []*PeerAuthentication
}

// addSecurity files o if it is an AuthorizationPolicy, RequestAuthentication
// or PeerAuthentication.
func (c *securityConfig) addSecurity(o *config.Object) {
	switch spec := o.Spec.(type) {
	case *security.AuthorizationPolicy:
		c.authzPolicies = append(c.authzPolicies, &AuthorizationPolicy{Name: o.Meta.Name, Namespace: o.Meta.Namespace,
			DryRun: dryRun(o.Meta.Annotations[AnnotationDryRun]), Spec: spec})
	case *security.RequestAuthentication:
		c.requestAuthns = append(c.requestAuthns, &RequestAuthentication{Name: o.Meta.Name, Namespace: o.Meta.Namespace, Spec: spec})
	case *security.PeerAuthentication:
		c.peerAuthns = append(c.peerAuthns, newPeerAuthentication(o, spec))
	}
}

// appliesTo is Istio's workload-policy attachment rule for sidecars: a policy
// in the root namespace applies mesh-wide, one elsewhere only to its own
// namespace; a selector narrows it to matching labels. Policies with
// targetRef/targetRefs attach only to gateways and waypoints, never to
// sidecars.
func (s *Snapshot) appliesTo(p *Proxy, ns string, sel *securitySelector) bool {
	if sel.hasTargetRef {
		return false
	}
	if ns != s.rootNamespace && ns != p.Namespace {
		return false
	}
	return sel.labels == nil || registry.LabelsMatch(sel.labels, p.Labels)
}

type securitySelector struct {
	labels       map[string]string
	hasTargetRef bool
}

// AuthorizationPoliciesFor returns the AuthorizationPolicies that apply to
// p, ordered by namespace then name (deterministic generator output).
func (s *Snapshot) AuthorizationPoliciesFor(p *Proxy) []*AuthorizationPolicy {
	var out []*AuthorizationPolicy
	for _, ap := range s.security.authzPolicies {
		sel := &securitySelector{labels: ap.Spec.GetSelector().GetMatchLabels(),
			hasTargetRef: ap.Spec.GetTargetRef() != nil || len(ap.Spec.GetTargetRefs()) > 0}
		if s.appliesTo(p, ap.Namespace, sel) {
			out = append(out, ap)
		}
	}
	return out
}

// RequestAuthenticationsFor returns the RequestAuthentications that apply to
// p, ordered by namespace then name.
func (s *Snapshot) RequestAuthenticationsFor(p *Proxy) []*RequestAuthentication {
	var out []*RequestAuthentication
	for _, ra := range s.security.requestAuthns {
		sel := &securitySelector{labels: ra.Spec.GetSelector().GetMatchLabels(),
			hasTargetRef: ra.Spec.GetTargetRef() != nil || len(ra.Spec.GetTargetRefs()) > 0}
		if s.appliesTo(p, ra.Namespace, sel) {
			out = append(out, ra)
		}
	}
	return out
}

// dryRun parses the dry-run annotation as Istio does (strconv.ParseBool);
// an unparsable value enforces the policy.
func dryRun(v string) bool {
	b, err := strconv.ParseBool(v)
	return err == nil && b
}

package model

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// Sidecar is a resolved Sidecar object. Only egress hosts are used: the
// union of every egress listener's hosts scopes what a proxy sees.
type Sidecar struct {
	Name, Namespace string
	// Selector picks workloads in Namespace; nil for the namespace default.
	Selector map[string]string
	// Egress holds "namespace/host" entries as written.
	Egress []string
	// OutboundPolicy is outboundTrafficPolicy.mode when the Sidecar sets
	// outboundTrafficPolicy (Istio's default mode there is REGISTRY_ONLY),
	// "" when it does not (the MeshConfig's applies).
	OutboundPolicy OutboundTrafficPolicy
}

func newSidecar(o *config.Object, spec *networking.Sidecar) *Sidecar {
	sc := &Sidecar{Name: o.Meta.Name, Namespace: o.Meta.Namespace}
	if ws := spec.GetWorkloadSelector(); ws != nil {
		sc.Selector = ws.GetLabels()
	}
	for _, e := range spec.GetEgress() {
		sc.Egress = append(sc.Egress, e.GetHosts()...)
	}
	if tp := spec.GetOutboundTrafficPolicy(); tp != nil {
		sc.OutboundPolicy = RegistryOnly
		if tp.GetMode() == networking.OutboundTrafficPolicy_ALLOW_ANY {
			sc.OutboundPolicy = AllowAny
		}
	}
	return sc
}

// OutboundPolicyFor returns the outbound traffic policy of p: its Sidecar's
// outboundTrafficPolicy, else the MeshConfig's (ALLOW_ANY by default).
func (s *Snapshot) OutboundPolicyFor(p *Proxy) OutboundTrafficPolicy {
	if sc := s.ScopeFor(p); sc != nil && sc.OutboundPolicy != "" {
		return sc.OutboundPolicy
	}
	if s.mesh != nil && s.mesh.OutboundTrafficPolicy != "" {
		return s.mesh.OutboundTrafficPolicy
	}
	return AllowAny
}

// ScopeFor returns the egress scope of p: from the Sidecar in p's namespace
// whose workloadSelector matches p, else the one without selector there, else
// the root namespace's one without selector; nil when none applies (all
// visible config is in scope). "." in an egress host means p's namespace.
func (s *Snapshot) ScopeFor(p *Proxy) *Scope {
	if p.Type == Router {
		return nil
	}
	pick := func(match func(*Sidecar) bool) *Sidecar {
		for _, sc := range s.sidecars {
			if match(sc) {
				return sc
			}
		}
		return nil
	}
	sc := pick(func(sc *Sidecar) bool {
		return sc.Namespace == p.Namespace && len(sc.Selector) > 0 && registry.LabelsMatch(sc.Selector, p.Labels)
	})
	if sc == nil {
		sc = pick(func(sc *Sidecar) bool { return sc.Namespace == p.Namespace && len(sc.Selector) == 0 })
	}
	if sc == nil {
		sc = pick(func(sc *Sidecar) bool { return sc.Namespace == s.rootNamespace && len(sc.Selector) == 0 })
	}
	if sc == nil {
		return nil
	}
	scope := &Scope{Sidecar: sc.Namespace + "/" + sc.Name, OutboundPolicy: sc.OutboundPolicy}
	if len(sc.Egress) == 0 { // Istio's default egress: every namespace (a Sidecar with only outboundTrafficPolicy)
		scope.Hosts = []EgressHost{{Namespace: "*", Host: "*"}}
	}
	for _, e := range sc.Egress {
		ns, host, ok := strings.Cut(e, "/")
		if !ok {
			continue
		}
		if ns == "." {
			ns = p.Namespace
		}
		scope.Hosts = append(scope.Hosts, EgressHost{Namespace: ns, Host: strings.ToLower(host)})
	}
	return scope
}

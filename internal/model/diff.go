package model

import (
	"maps"
	"slices"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/bowline-mesh/bowline/internal/config"

	"github.com/bowline-mesh/bowline/internal/registry"
)

// Changes is what differs between two snapshots, in the terms generation
// needs to redo only what a change touches (Istio's ConfigsUpdated): which
// services' endpoints changed and which hosts' routing. Config objects and
// services are compared by pointer (the config directory and the registry
// keep unchanged ones), so an unchanged object rebuilt as a new value
// counts as changed: Changes may say more changed than did, never less.
type Changes struct {
	// All says a change is not one of the kinds below (any configuration
	// but a VirtualService or DestinationRule with exact hosts, a workload
	// security policy and the kinds the registry turns into services, a
	// service added, removed or redefined, other options): everything must be regenerated, and the
	// other fields are empty.
	All bool
	// Endpoints maps each service whose definition is unchanged but whose
	// endpoints changed, from its value in the older snapshot to the newer.
	Endpoints map[*registry.Service]*registry.Service
	// Addresses holds the address of every endpoint of the services in
	// Endpoints, old and new values (what a workload's inbound part may
	// depend on).
	Addresses map[string]bool
	// RouteHosts are the hosts (FQDNs) whose routing may differ: those of
	// the VirtualServices added, removed or changed, and of those routing
	// to a host in ClusterHosts (a route's hash policy is its
	// destination's DestinationRule's).
	RouteHosts map[string]bool
	// ClusterHosts are the hosts (FQDNs) of the DestinationRules with exact
	// hosts added, removed or changed: their clusters and load assignments
	// (subsets) may differ.
	ClusterHosts map[string]bool
	// Policies are the attachments of the security policies added, removed
	// or changed (AuthorizationPolicy, RequestAuthentication, and
	// PeerAuthentication with a selector; a namespace or mesh
	// PeerAuthentication decides auto mTLS of outbound clusters and is
	// All): both versions of a changed one. Only the inbound part of the
	// sidecars they select may differ (Selects); gateways are generated
	// in full on every push.
	Policies []PolicyAttachment
}

// PolicyAttachment is where a workload security policy applies to
// sidecars (Snapshot.appliesTo): its namespace (mesh-wide when Mesh, the
// root namespace), narrowed by Labels; a policy with targetRefs attaches
// to no sidecar.
type PolicyAttachment struct {
	Namespace string
	Mesh      bool
	Labels    map[string]string
	TargetRef bool
}

// Selects reports whether a policy attached so may apply to p (a superset
// of Istio's rule for PeerAuthentication with a selector, which applies in
// its own namespace only).
func (a PolicyAttachment) Selects(p *Proxy) bool {
	if a.TargetRef || (!a.Mesh && a.Namespace != p.Namespace) {
		return false
	}
	return len(a.Labels) == 0 || registry.LabelsMatch(a.Labels, p.Labels)
}

// Diff returns what changed from prev to next. Diff(s, s) changes nothing.
func Diff(prev, next *Snapshot) Changes {
	all := Changes{All: true}
	if prev == nil || next == nil {
		return all
	}
	if prev.domain != next.domain || prev.rootNamespace != next.rootNamespace || prev.noCA != next.noCA ||
		!sameSelectors(prev.selectors, next.selectors) {
		return all
	}
	var ch Changes
	// Objects: only VirtualServices with exact hosts are classified.
	gone, added := pointerDiff(prev.objects, next.objects)
	for _, o := range changedObjects(gone, added) {
		if registryKind(o.GVK.Kind) {
			continue // read only through the registry: the services below hold what changed
		}
		switch spec := o.Spec.(type) {
		case *networking.VirtualService:
			if len(spec.GetHosts()) == 0 { // a delegate: its roots are not known here
				return all
			}
			for _, h := range spec.GetHosts() {
				if !ch.addHost(&ch.RouteHosts, ResolveHost(h, o.Meta.Namespace, next.domain)) {
					return all
				}
			}
		case *networking.DestinationRule:
			host := ResolveHost(spec.GetHost(), o.Meta.Namespace, next.domain)
			if !ch.addHost(&ch.ClusterHosts, host) || !ch.addHost(&ch.RouteHosts, host) {
				return all
			}
		case *security.AuthorizationPolicy:
			ch.addPolicy(next, o.Meta.Namespace, spec.GetSelector().GetMatchLabels(), spec.GetTargetRef() != nil || len(spec.GetTargetRefs()) > 0)
		case *security.RequestAuthentication:
			ch.addPolicy(next, o.Meta.Namespace, spec.GetSelector().GetMatchLabels(), spec.GetTargetRef() != nil || len(spec.GetTargetRefs()) > 0)
		case *security.PeerAuthentication:
			if len(spec.GetSelector().GetMatchLabels()) == 0 {
				return all // the namespace's (or mesh's) mode: auto mTLS of every cluster to it
			}
			ch.addPolicy(next, o.Meta.Namespace, spec.GetSelector().GetMatchLabels(), false)
		default:
			return all
		}
	}
	// Routes name DestinationRules' hosts: their routes' hash policies.
	for _, vss := range [][]*VirtualService{prev.virtualServices, next.virtualServices} {
		for _, vs := range vss {
			if !routesTo(vs, ch.ClusterHosts) {
				continue
			}
			for _, h := range vs.Hosts {
				if !ch.addHost(&ch.RouteHosts, h) {
					return all
				}
			}
		}
	}
	// Services: only endpoint changes of a service defined as before.
	goneSvcs, addedSvcs := pointerDiff(prev.services, next.services)
	if len(goneSvcs) != len(addedSvcs) {
		return all
	}
	type svcKey struct{ host, ns, name string }
	olds := make(map[svcKey]*registry.Service, len(goneSvcs))
	for _, s := range goneSvcs {
		olds[svcKey{s.Hostname, s.Namespace, s.Name}] = s
	}
	for _, s := range addedSvcs {
		old, ok := olds[svcKey{s.Hostname, s.Namespace, s.Name}]
		if !ok || !sameDefinition(old, s) {
			return all
		}
		if slices.EqualFunc(old.Endpoints, s.Endpoints, sameEndpoint) {
			delete(olds, svcKey{s.Hostname, s.Namespace, s.Name})
			continue // the same content as a new value (its ServiceEntry was read again)
		}
		if ch.Endpoints == nil {
			ch.Endpoints = make(map[*registry.Service]*registry.Service, len(addedSvcs))
		}
		ch.Endpoints[old] = s
		if ch.Addresses == nil {
			ch.Addresses = map[string]bool{}
		}
		for _, e := range slices.Concat(old.Endpoints, s.Endpoints) {
			ch.Addresses[e.Address] = true
		}
	}
	if len(ch.Endpoints) != len(olds) { // two new values for one old one
		return all
	}
	return ch
}

// addHost adds an exact host to *set; it reports false for a wildcard.
func (c *Changes) addHost(set *map[string]bool, host string) bool {
	if IsWildcard(host) {
		return false
	}
	if *set == nil {
		*set = map[string]bool{}
	}
	(*set)[host] = true
	return true
}

// addPolicy records a security policy's attachment.
func (c *Changes) addPolicy(s *Snapshot, ns string, labels map[string]string, targetRef bool) {
	c.Policies = append(c.Policies, PolicyAttachment{Namespace: ns, Mesh: ns == s.rootNamespace, Labels: labels, TargetRef: targetRef})
}

// routesTo reports whether an HTTP route of vs has a destination in hosts.
func routesTo(vs *VirtualService, hosts map[string]bool) bool {
	if len(hosts) == 0 {
		return false
	}
	for _, r := range vs.HTTP {
		for _, d := range r.GetRoute() {
			if hosts[d.GetDestination().GetHost()] {
				return true
			}
		}
	}
	return false
}

// registryKind reports whether Build reads objects of kind only through
// the services the registry derives from them.
func registryKind(kind string) bool {
	switch kind {
	case config.KindServiceEntry, config.KindWorkloadEntry, config.KindWorkloadGroup, config.KindWorkload:
		return true
	}
	return false
}

// Empty reports whether nothing changed.
func (c Changes) Empty() bool {
	return !c.All && len(c.Endpoints) == 0 && len(c.RouteHosts) == 0 && len(c.ClusterHosts) == 0 && len(c.Policies) == 0
}

// pointerDiff returns the elements only in a and those only in b, each in
// its slice's order.
func pointerDiff[T any](a, b []*T) (onlyA, onlyB []*T) {
	inA := make(map[*T]bool, len(a))
	for _, x := range a {
		inA[x] = true
	}
	inB := make(map[*T]bool, len(b))
	for _, x := range b {
		inB[x] = true
		if !inA[x] {
			onlyB = append(onlyB, x)
		}
	}
	for _, x := range a {
		if !inB[x] {
			onlyA = append(onlyA, x)
		}
	}
	return onlyA, onlyB
}

// changedObjects returns the objects of gone and added that differ in
// content: a file read again gives new values for the objects it held,
// changed or not.
func changedObjects(gone, added []*config.Object) []*config.Object {
	type key struct{ kind, ns, name string }
	byKey := make(map[key][]*config.Object, len(gone))
	for _, o := range gone {
		k := key{o.GVK.Kind, o.Meta.Namespace, o.Meta.Name}
		byKey[k] = append(byKey[k], o)
	}
	same := map[*config.Object]bool{}
	for _, o := range added {
		k := key{o.GVK.Kind, o.Meta.Namespace, o.Meta.Name}
		if olds := byKey[k]; len(olds) == 1 && objectSum(olds[0]) == objectSum(o) {
			same[olds[0]], same[o] = true, true
		}
	}
	var out []*config.Object
	for _, o := range slices.Concat(gone, added) {
		if !same[o] {
			out = append(out, o)
		}
	}
	return out
}

// sameDefinition reports whether a and b differ at most in their endpoints.
func sameDefinition(a, b *registry.Service) bool {
	return a.Hostname == b.Hostname && a.Namespace == b.Namespace && a.Name == b.Name &&
		a.Resolution == b.Resolution && a.MeshExternal == b.MeshExternal &&
		slices.Equal(a.Addresses, b.Addresses) && slices.Equal(a.Ports, b.Ports) && slices.Equal(a.ExportTo, b.ExportTo)
}

func sameEndpoint(a, b *registry.Endpoint) bool {
	return a.Address == b.Address && a.WorkloadName == b.WorkloadName && a.Namespace == b.Namespace &&
		a.ServiceAccount == b.ServiceAccount && a.Locality == b.Locality && a.Network == b.Network &&
		a.Weight == b.Weight && a.Healthy == b.Healthy && a.Sidecar == b.Sidecar &&
		maps.Equal(a.Ports, b.Ports) && maps.Equal(a.Labels, b.Labels) && maps.Equal(a.ContainerPorts, b.ContainerPorts)
}

func sameSelectors(a, b []labelSelector) bool {
	return slices.EqualFunc(a, b, func(x, y labelSelector) bool {
		if x.namespace != y.namespace || len(x.labels) != len(y.labels) {
			return false
		}
		for k, v := range x.labels {
			if w, ok := y.labels[k]; !ok || w != v {
				return false
			}
		}
		return true
	})
}

package model

import (
	"maps"
	"slices"
	"strings"

	"github.com/bowline-mesh/bowline/internal/registry"
)

// labelSelector is one label selector that can change what a sidecar's
// outbound configuration holds: a Sidecar's or a DestinationRule's
// workloadSelector (namespace: where the resource lives; it applies only to
// proxies there) or a VirtualService match's sourceLabels (namespace "":
// any proxy the VirtualService is visible to).
type labelSelector struct {
	namespace string
	labels    map[string]string
}

// indexSelectors collects the snapshot's outbound label selectors,
// deduplicated, in a deterministic order.
func (s *Snapshot) indexSelectors() {
	seen := map[string]bool{}
	add := func(ns string, labels map[string]string) {
		if len(labels) == 0 {
			return
		}
		var b strings.Builder
		b.WriteString(ns)
		for _, k := range slices.Sorted(maps.Keys(labels)) {
			b.WriteString("\x00" + k + "=" + labels[k])
		}
		if k := b.String(); !seen[k] {
			seen[k] = true
			s.selectors = append(s.selectors, labelSelector{namespace: ns, labels: labels})
		}
	}
	for _, sc := range s.sidecars {
		add(sc.Namespace, sc.Selector)
	}
	for _, d := range s.destinationRules {
		add(d.Namespace, d.Selector)
	}
	for _, vs := range s.virtualServices {
		for _, r := range vs.HTTP {
			for _, m := range r.GetMatch() {
				add("", m.GetSourceLabels())
			}
		}
		for _, r := range vs.TCP {
			for _, m := range r.GetMatch() {
				add("", m.GetSourceLabels())
			}
		}
	}
}

// SelectorMatches says which of the label selectors that shape outbound
// configuration (Sidecar and DestinationRule workloadSelectors,
// VirtualService sourceLabels) select p, one byte per selector: '1' or '0'.
// Two proxies in the same namespace with equal SelectorMatches see the same
// Sidecar scope, DestinationRules and VirtualService matches, whatever else
// their labels say; this is how a proxy's labels enter its outbound scope
// key (xds.ScopeKey).
func (s *Snapshot) SelectorMatches(p *Proxy) string {
	if len(s.selectors) == 0 {
		return ""
	}
	b := make([]byte, len(s.selectors))
	for i, sel := range s.selectors {
		b[i] = '0'
		if (sel.namespace == "" || sel.namespace == p.Namespace) && registry.LabelsMatch(sel.labels, p.Labels) {
			b[i] = '1'
		}
	}
	return string(b)
}

// EndpointRef is one endpoint of a service, as EndpointsAt returns it.
type EndpointRef struct {
	Service  *registry.Service
	Endpoint *registry.Endpoint
}

// EndpointsAt returns the endpoints with one of ips as address, in the
// order of Services() and then of each service's endpoints. The index is
// built on first use.
func (s *Snapshot) EndpointsAt(ips []string) []EndpointRef {
	s.byIPOnce.Do(func() {
		s.byIP = map[string][]endpointPos{}
		for i, svc := range s.services {
			for j, e := range svc.Endpoints {
				s.byIP[e.Address] = append(s.byIP[e.Address], endpointPos{svc: i, ep: j})
			}
		}
	})
	var pos []endpointPos
	for _, ip := range ips {
		pos = append(pos, s.byIP[ip]...)
	}
	if len(ips) > 1 {
		slices.SortFunc(pos, func(a, b endpointPos) int {
			if a.svc != b.svc {
				return a.svc - b.svc
			}
			return a.ep - b.ep
		})
		pos = slices.Compact(pos)
	}
	out := make([]EndpointRef, len(pos))
	for i, p := range pos {
		svc := s.services[p.svc]
		out[i] = EndpointRef{Service: svc, Endpoint: svc.Endpoints[p.ep]}
	}
	return out
}

// endpointPos locates an endpoint: the service's index in services and
// the endpoint's in the service.
type endpointPos struct{ svc, ep int }

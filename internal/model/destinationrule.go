package model

import (
	"slices"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// DestinationRule is a DestinationRule with its host resolved.
type DestinationRule struct {
	Name, Namespace string
	// Host is the FQDN (or wildcard) the rule applies to.
	Host     string
	ExportTo []string
	// Selector is workloadSelector.matchLabels; nil when the rule has none.
	Selector map[string]string
	Spec     *networking.DestinationRule
}

// Ref returns "namespace/name".
func (d *DestinationRule) Ref() string { return d.Namespace + "/" + d.Name }

func newDestinationRule(o *config.Object, spec *networking.DestinationRule, domain string) *DestinationRule {
	dr := &DestinationRule{Name: o.Meta.Name, Namespace: o.Meta.Namespace,
		Host: ResolveHost(spec.GetHost(), o.Meta.Namespace, domain), ExportTo: spec.GetExportTo(), Spec: spec}
	if ws := spec.GetWorkloadSelector(); ws != nil {
		dr.Selector = ws.GetMatchLabels()
	}
	return dr
}

// MergedDestinationRule is the policy that applies to one host for one proxy.
type MergedDestinationRule struct {
	// Host is the rule's host (possibly a wildcard covering the service).
	Host string
	// TrafficPolicy comes from the highest-precedence rule that sets one.
	TrafficPolicy *networking.TrafficPolicy
	// Subsets are the union of the merged rules' subsets; on a name clash the
	// higher-precedence rule's subset wins.
	Subsets []*networking.Subset
	// From lists the merged rules, "namespace/name", highest precedence first.
	From []string
	// Rules are the merged rules, in From's order.
	Rules []*DestinationRule
}

// Subset returns the named subset or nil.
func (m *MergedDestinationRule) Subset(name string) *networking.Subset {
	if m == nil {
		return nil
	}
	for _, s := range m.Subsets {
		if s.GetName() == name {
			return s
		}
	}
	return nil
}

// DestinationRuleFor returns the destination policy p uses for host, whose
// service lives in svcNamespace, or nil. Precedence, as in Istio's push context:
//  1. rules in p's namespace whose workloadSelector matches p,
//  2. rules in p's namespace without a selector,
//  3. rules in the service's namespace exported to p's namespace,
//  4. rules in the root namespace exported to p's namespace.
//
// Within a level the most specific host wins and rules for that same host are
// merged (first by namespace/name sets the traffic policy; subsets are
// unioned). A level-1 result is further merged with the level-2 rule for the
// same host, the selector rule taking precedence.
func (s *Snapshot) DestinationRuleFor(p *Proxy, host, svcNamespace string) *MergedDestinationRule {
	levels := []func(*DestinationRule) bool{
		func(d *DestinationRule) bool {
			return d.Namespace == p.Namespace && len(d.Selector) > 0 && registry.LabelsMatch(d.Selector, p.Labels)
		},
		func(d *DestinationRule) bool { return d.Namespace == p.Namespace && len(d.Selector) == 0 },
		func(d *DestinationRule) bool {
			return d.Namespace == svcNamespace && d.Namespace != p.Namespace && len(d.Selector) == 0 &&
				exportedTo(d.ExportTo, d.Namespace, p.Namespace)
		},
		func(d *DestinationRule) bool {
			return d.Namespace == s.rootNamespace && d.Namespace != p.Namespace && d.Namespace != svcNamespace &&
				len(d.Selector) == 0 && exportedTo(d.ExportTo, d.Namespace, p.Namespace)
		},
	}
	for i, level := range levels {
		rules := s.bestRules(host, level)
		if len(rules) == 0 {
			continue
		}
		if i == 0 {
			for _, d := range s.bestRules(host, levels[1]) {
				if d.Host == rules[0].Host {
					rules = append(rules, d)
				}
			}
		}
		return mergeRules(rules)
	}
	return nil
}

// bestRules returns the rules accepted by keep whose host covers host, keeping
// only those with the most specific host, in snapshot order.
func (s *Snapshot) bestRules(host string, keep func(*DestinationRule) bool) []*DestinationRule {
	// An exact host beats every wildcard: look there first.
	var out []*DestinationRule
	for _, d := range s.drByHost[host] {
		if keep(d) {
			out = append(out, d)
		}
	}
	if len(out) > 0 {
		return out
	}
	best := -1
	for _, d := range s.drWildcards {
		if !keep(d) || !HostMatches(d.Host, host) {
			continue
		}
		switch sp := hostSpecificity(d.Host); {
		case sp > best:
			best, out = sp, []*DestinationRule{d}
		case sp == best && d.Host == out[0].Host:
			out = append(out, d)
		}
	}
	return out
}

func mergeRules(rules []*DestinationRule) *MergedDestinationRule {
	m := &MergedDestinationRule{Host: rules[0].Host}
	for _, d := range rules {
		m.From = append(m.From, d.Ref())
		m.Rules = append(m.Rules, d)
		if m.TrafficPolicy == nil {
			m.TrafficPolicy = d.Spec.GetTrafficPolicy()
		}
		for _, sub := range d.Spec.GetSubsets() {
			if !slices.ContainsFunc(m.Subsets, func(x *networking.Subset) bool { return x.GetName() == sub.GetName() }) {
				m.Subsets = append(m.Subsets, sub)
			}
		}
	}
	return m
}

// indexDestinationRules fills drByHost (exact hosts) and drWildcards, both
// in destinationRules order, for bestRules.
func (s *Snapshot) indexDestinationRules() {
	s.drByHost = map[string][]*DestinationRule{}
	for _, d := range s.destinationRules {
		if IsWildcard(d.Host) {
			s.drWildcards = append(s.drWildcards, d)
			continue
		}
		s.drByHost[d.Host] = append(s.drByHost[d.Host], d)
	}
}

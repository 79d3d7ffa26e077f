package xds

import (
	"slices"
	"strings"
)

// trustDomains are the mesh's trust domain followed by its MeshConfig
// trustDomainAliases: identities of any of them are the same workload to
// AuthorizationPolicy, as Istio's trust domain bundle has it.
type trustDomains []string

// trustDomains is the bundle of the snapshot's mesh config.
func (g *gen) trustDomains() trustDomains {
	m := g.snap.Mesh()
	td := m.TrustDomain
	if td == "" {
		td = defaultTrustDomain
	}
	return append(trustDomains{td}, m.TrustDomainAliases...)
}

// principals rewrites AuthorizationPolicy principals as istiod does: a
// principal TD/ns/NS/sa/SA whose trust domain is one of the bundle's (or the
// literal cluster.local, which stands for the local trust domain) becomes
// one principal per trust domain of the bundle; one whose trust domain is
// "*", any other, or that is not of that form stays as it is. A trust
// domain with a leading * that matches a bundle entry is kept for it.
func (tds trustDomains) principals(ps []string) []string {
	if len(ps) == 0 {
		return ps
	}
	var out []string
	for _, p := range ps {
		parts := strings.Split(p, "/")
		if len(parts) != 5 || parts[0] == "*" || (!slices.Contains(tds, parts[0]) && parts[0] != defaultTrustDomain) {
			out = append(out, p)
			continue
		}
		var own []string
		for _, td := range tds {
			np := p
			if !suffixMatches(parts[0], td) {
				np = td + "/" + strings.Join(parts[1:], "/")
			}
			if !slices.Contains(own, np) {
				own = append(own, np)
			}
		}
		out = append(out, own...)
	}
	return out
}

// suffixMatches reports whether the principal's trust domain pattern (which
// may start with *) matches td.
func suffixMatches(pattern, td string) bool {
	if s, ok := strings.CutPrefix(pattern, "*"); ok {
		return strings.HasSuffix(td, s)
	}
	return pattern == td
}

// trustDomainValues expands source.trustDomains values naming a trust
// domain of the bundle to all of them (Istio's ExpandTrustDomainAliases).
func (tds trustDomains) trustDomainValues(vs []string) []string {
	if len(vs) == 0 || len(tds) < 2 {
		return vs
	}
	var out []string
	for _, v := range vs {
		add := []string{v}
		if slices.Contains(tds, v) {
			add = tds
		}
		for _, a := range add {
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}

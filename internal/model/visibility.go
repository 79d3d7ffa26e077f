package model

import "slices"

// exportedTo reports whether a config in namespace cfgNS with the given
// exportTo list is visible in namespace ns ("" or "*" everywhere, "." own
// namespace, "~" nowhere, or namespace names).
func exportedTo(exportTo []string, cfgNS, ns string) bool {
	if len(exportTo) == 0 {
		return true
	}
	for _, e := range exportTo {
		switch e {
		case "*":
			return true
		case ".":
			if cfgNS == ns {
				return true
			}
		case "~":
		default:
			if e == ns {
				return true
			}
		}
	}
	return false
}

// EgressHost is one Sidecar egress host "namespace/host" with "." resolved to
// the Sidecar's namespace.
type EgressHost struct {
	Namespace string // "*", "~" or a namespace
	Host      string // "*", "*.suffix" or a host
}

// Matches reports whether a config in namespace ns with host is in scope.
func (e EgressHost) Matches(ns, host string) bool {
	if e.Namespace == "~" {
		return false
	}
	if e.Namespace != "*" && e.Namespace != ns {
		return false
	}
	return HostMatches(e.Host, host) || (IsWildcard(host) && HostMatches(host, e.Host))
}

// Scope is the set of egress hosts that apply to a proxy. A nil Scope lets
// everything through (no Sidecar applies).
type Scope struct {
	// Sidecar is "namespace/name" of the Sidecar that defined it.
	Sidecar string
	Hosts   []EgressHost
	// OutboundPolicy is the Sidecar's outboundTrafficPolicy mode, "" if unset.
	OutboundPolicy OutboundTrafficPolicy
}

// Allows reports whether a config (service, VirtualService) in ns with any of
// hosts is in scope.
func (s *Scope) Allows(ns string, hosts ...string) bool {
	if s == nil {
		return true
	}
	return slices.ContainsFunc(hosts, func(h string) bool {
		return slices.ContainsFunc(s.Hosts, func(e EgressHost) bool { return e.Matches(ns, h) })
	})
}

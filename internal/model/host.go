package model

import "strings"

// ResolveHost turns a host as written in config into the name the mesh uses,
// with Istio's rule: a name without dots ("reviews") is short for
// "reviews.<namespace>.svc.<domain>"; "*" and names with dots are kept.
func ResolveHost(host, namespace, domain string) string {
	host = strings.ToLower(host)
	if host == "*" || strings.Contains(host, ".") || host == "" {
		return host
	}
	return host + "." + namespace + ".svc." + domain
}

// IsWildcard reports whether host is "*" or "*.suffix".
func IsWildcard(host string) bool { return strings.HasPrefix(host, "*") }

// HostMatches reports whether pattern (possibly a wildcard "*" or "*.example.com")
// covers host. A wildcard host is covered only by an equal or wider wildcard.
func HostMatches(pattern, host string) bool {
	if pattern == "*" || pattern == host {
		return true
	}
	if !IsWildcard(pattern) {
		return false
	}
	suffix := pattern[1:] // ".example.com"
	if IsWildcard(host) {
		return strings.HasSuffix(host[1:], suffix) && len(host) > len(pattern)
	}
	return strings.HasSuffix(host, suffix)
}

// HostIntersection returns the narrower of a and b when one covers the other
// (Istio's rule for binding VirtualService hosts to Gateway server hosts).
func HostIntersection(a, b string) (string, bool) {
	if HostMatches(a, b) {
		return b, true
	}
	if HostMatches(b, a) {
		return a, true
	}
	return "", false
}

// hostSpecificity orders matches: an exact host beats any wildcard, a longer
// wildcard beats a shorter one.
func hostSpecificity(pattern string) int {
	if !IsWildcard(pattern) {
		return 1 << 20
	}
	return len(pattern)
}

// ShortNames returns the names a client in the same namespace may use for an
// in-mesh host "name.ns.svc.<domain>": "name", "name.ns", "name.ns.svc",
// "name.ns.svc.<cluster>" ... in Istio's order. Hosts outside the
// cluster domain have none. Short names are offered only to proxies in ns
// ("name") - the caller decides; this lists every form.
func ShortNames(host, domain string) (sameNamespace []string, any []string) {
	suffix := ".svc." + domain
	if !strings.HasSuffix(host, suffix) {
		return nil, nil
	}
	base := strings.TrimSuffix(host, suffix) // name.ns
	name, ns, ok := strings.Cut(base, ".")
	if !ok || strings.Contains(ns, ".") {
		return nil, nil
	}
	any = []string{name + "." + ns, name + "." + ns + ".svc"}
	if d, _, ok := strings.Cut(domain, "."); ok {
		any = append(any, name+"."+ns+".svc."+d)
	}
	return []string{name}, any
}

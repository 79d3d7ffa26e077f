package analysis

import "strings"

// Host names as Istio compares them: "*" alone matches every host, a leading
// "*." is a wildcard over the suffix, everything else is compared exactly
// (case-insensitively, as DNS is).

func isWildcard(h string) bool { return strings.HasPrefix(h, "*") }

// hostsMatch reports whether a and b can name the same host: each is either
// equal to the other or covered by the other's wildcard (Istio host.Name.Matches).
func hostsMatch(a, b string) bool {
	a, b = strings.ToLower(a), strings.ToLower(b)
	switch {
	case isWildcard(a) && isWildcard(b):
		return strings.HasSuffix(a[1:], b[1:]) || strings.HasSuffix(b[1:], a[1:])
	case isWildcard(a):
		return strings.HasSuffix(b, a[1:])
	case isWildcard(b):
		return strings.HasSuffix(a, b[1:])
	default:
		return a == b
	}
}

// fqdn completes a short host name ("reviews") with namespace and domain;
// wildcards and names with a dot are already complete.
func fqdn(host, namespace, domain string) string {
	if isWildcard(host) || strings.Contains(host, ".") {
		return host
	}
	return host + "." + namespace + ".svc." + domain
}

// hostNamespace returns the namespace a Kubernetes service host lives in
// ("reviews.default.svc.cluster.local" -> "default", "*.default.svc.cluster.local"
// -> "default"), or "" for any other host.
func hostNamespace(host, domain string) string {
	suffix := ".svc." + domain
	if !strings.HasSuffix(host, suffix) {
		return ""
	}
	parts := strings.Split(strings.TrimSuffix(host, suffix), ".")
	if len(parts) != 2 || parts[1] == "*" || parts[1] == "" {
		return ""
	}
	return parts[1]
}

// exportScopes turns an exportTo list into the namespaces that see a
// resource of namespace ns: "*" for all (also when the list is empty), "." for ns itself.
func exportScopes(exportTo []string, ns string) []string {
	if len(exportTo) == 0 {
		return []string{"*"}
	}
	var out []string
	for _, e := range exportTo {
		switch e {
		case "*":
			return []string{"*"}
		case ".":
			out = append(out, ns)
		default:
			out = append(out, e)
		}
	}
	return out
}

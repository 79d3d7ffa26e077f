package analysis

import (
	"fmt"
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/config"
)

// conflictingGatewayAnalyzer reports Gateways that select the same
// workloads and listen on the same port for overlapping hosts (IST0145).
type conflictingGatewayAnalyzer struct{}

var _ Analyzer = conflictingGatewayAnalyzer{}

func (conflictingGatewayAnalyzer) Name() string { return "gateway.ConflictingGatewayAnalyzer" }
func (conflictingGatewayAnalyzer) Description() string {
	return "Checks a gateway's selector, port number and hosts"
}

// selectorString renders labels as Kubernetes does: sorted "k=v,k2=v2".
func selectorString(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + labels[k]
	}
	return strings.Join(parts, ",")
}

// stripHostNamespace removes the "ns/" part of a gateway server host.
func stripHostNamespace(h string) string {
	if i := strings.Index(h, "/"); i >= 0 {
		return h[i+1:]
	}
	return h
}

func (conflictingGatewayAnalyzer) Analyze(c *Context) {
	type server struct {
		obj   *config.Object
		hosts []string
	}
	// selector~port -> servers
	byKey := map[string][]server{}
	gws := c.Objects(config.KindGateway)
	for _, o := range gws {
		gw, ok := o.Spec.(*networking.Gateway)
		if !ok {
			continue
		}
		sel := selectorString(gw.GetSelector())
		for _, s := range gw.GetServers() {
			key := fmt.Sprintf("%s~%d", sel, s.GetPort().GetNumber())
			byKey[key] = append(byKey[key], server{obj: o, hosts: s.GetHosts()})
		}
	}
	for _, o := range gws {
		gw, ok := o.Spec.(*networking.Gateway)
		if !ok {
			continue
		}
		sel := selectorString(gw.GetSelector())
		for i, s := range gw.GetServers() {
			key := fmt.Sprintf("%s~%d", sel, s.GetPort().GetNumber())
			seen := map[string]bool{}
			var conflicts []string
			for _, other := range byKey[key] {
				if other.obj == o {
					continue
				}
				name := other.obj.Meta.Namespace + "/" + other.obj.Meta.Name
				if seen[name] || !anyHostsMatch(s.GetHosts(), other.hosts) {
					continue
				}
				seen[name] = true
				conflicts = append(conflicts, name)
			}
			if len(conflicts) == 0 {
				continue
			}
			sort.Strings(conflicts)
			c.Report(ConflictingGateways, o, fmt.Sprintf("spec.servers[%d].port.number", i),
				strings.Join(conflicts, ","), sel, fmt.Sprint(s.GetPort().GetNumber()), strings.Join(s.GetHosts(), ","))
		}
	}
}

func anyHostsMatch(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if hostsMatch(stripHostNamespace(x), stripHostNamespace(y)) {
				return true
			}
		}
	}
	return false
}

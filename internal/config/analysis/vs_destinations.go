package analysis

import (
	"fmt"
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/config"
)

// destinationHostAnalyzer checks that every VirtualService destination host
// is a service the files define (a ServiceEntry host, a Kubernetes Service or
// a Workload) and that its port exists (IST0101, IST0112). Like istioctl
// analyze on files only, a host nothing defines is reported even when the
// files define no services at all.
type destinationHostAnalyzer struct{}

var _ Analyzer = destinationHostAnalyzer{}

func (destinationHostAnalyzer) Name() string { return "virtualservice.DestinationHostAnalyzer" }
func (destinationHostAnalyzer) Description() string {
	return "Checks the destination hosts associated with each virtual service"
}

func (destinationHostAnalyzer) Analyze(c *Context) {
	for _, o := range c.Objects(config.KindVirtualService) {
		vs, ok := o.Spec.(*networking.VirtualService)
		if !ok {
			continue
		}
		routes, mirrors := routeDestinations(vs)
		for _, d := range append(routes, mirrors...) {
			host := d.dest.GetHost()
			if host == "" {
				continue
			}
			s := c.registry.lookup(host, o.Meta.Namespace)
			if s == nil {
				kind := "host"
				if d.mirror {
					kind = "mirror host"
				}
				c.Report(ReferencedResourceNotFound, o, d.path+".host", kind, host)
				continue
			}
			if !s.portsKnown {
				continue
			}
			port := d.dest.GetPort().GetNumber()
			switch {
			case port == 0 && len(s.ports) > 1:
				ports := make([]int, len(s.ports))
				for i, p := range s.ports {
					ports[i] = int(p)
				}
				c.Report(VirtualServiceDestinationPortSelectorRequired, o, d.path+".host", host, ports)
			case port != 0 && !slices.Contains(s.ports, port):
				c.Report(ReferencedResourceNotFound, o, d.path+".port.number", "host:port", fmt.Sprintf("%s:%d", host, port))
			}
		}
	}
}

// destinationRuleSubsetAnalyzer checks that every subset a VirtualService
// routes to is defined by a DestinationRule for that host (IST0101).
type destinationRuleSubsetAnalyzer struct{}

var _ Analyzer = destinationRuleSubsetAnalyzer{}

func (destinationRuleSubsetAnalyzer) Name() string { return "virtualservice.DestinationRuleAnalyzer" }
func (destinationRuleSubsetAnalyzer) Description() string {
	return "Checks the destination rules associated with each virtual service"
}

func (destinationRuleSubsetAnalyzer) Analyze(c *Context) {
	domain := c.opts.domain()
	type drSubsets struct {
		host    string
		subsets map[string]bool
	}
	var rules []drSubsets
	for _, o := range c.Objects(config.KindDestinationRule) {
		dr, ok := o.Spec.(*networking.DestinationRule)
		if !ok {
			continue
		}
		s := drSubsets{host: strings.ToLower(fqdn(dr.GetHost(), o.Meta.Namespace, domain)), subsets: map[string]bool{}}
		for _, ss := range dr.GetSubsets() {
			s.subsets[ss.GetName()] = true
		}
		rules = append(rules, s)
	}
	defined := func(host, subset string) bool {
		for _, r := range rules {
			if !r.subsets[subset] {
				continue
			}
			if r.host == host || (isWildcard(r.host) && hostsMatch(r.host, host)) {
				return true
			}
		}
		return false
	}
	for _, o := range c.Objects(config.KindVirtualService) {
		vs, ok := o.Spec.(*networking.VirtualService)
		if !ok {
			continue
		}
		routes, mirrors := routeDestinations(vs)
		for _, d := range append(routes, mirrors...) {
			subset := d.dest.GetSubset()
			if subset == "" {
				continue
			}
			host := strings.ToLower(fqdn(d.dest.GetHost(), o.Meta.Namespace, domain))
			if defined(host, subset) {
				continue
			}
			kind := "host+subset in destinationrule"
			if d.mirror {
				kind = "mirror+subset in destinationrule"
			}
			c.Report(ReferencedResourceNotFound, o, d.path+".subset", kind, d.dest.GetHost()+"+"+subset)
		}
	}
}

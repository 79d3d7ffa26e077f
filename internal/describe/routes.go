package describe

import (
	"fmt"
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// destinationRule describes the rule clients in the pod's namespace use
// for svc: its subsets (which select pod, when given) and traffic policy.
func (d *describer) destinationRule(dr *model.MergedDestinationRule, svc *registry.Service, pod *registry.Workload) {
	if dr == nil {
		d.printf("DestinationRule: none for %q\n", svc.Hostname)
		return
	}
	d.printf("DestinationRule: %s for %q\n", strings.Join(dr.From, ", "), dr.Host)
	var match, other []string
	for _, s := range dr.Subsets {
		switch {
		case pod == nil:
			other = append(other, fmt.Sprintf("%s (%s)", s.GetName(), labels(s.GetLabels())))
		case registry.LabelsMatch(s.GetLabels(), pod.Labels):
			match = append(match, s.GetName())
		default:
			other = append(other, s.GetName())
		}
	}
	switch {
	case pod == nil && len(other) > 0:
		d.printf("   Subsets: %s\n", strings.Join(other, ", "))
	case pod != nil && len(match) > 0:
		d.printf("   Matching subsets: %s\n", strings.Join(match, ", "))
		if len(other) > 0 {
			d.printf("      (non-matching subsets %s)\n", strings.Join(other, ", "))
		}
	case pod != nil && len(other) > 0:
		d.printf("   WARNING: no subset selects this pod (subsets %s)\n", strings.Join(other, ", "))
	}
	tp := dr.TrafficPolicy
	if tp == nil {
		d.printf("   No traffic policy\n")
		return
	}
	if m := tp.GetTls().GetMode(); tp.GetTls() != nil {
		d.printf("   Traffic policy TLS mode: %s\n", m)
	}
	if lb := tp.GetLoadBalancer(); lb != nil {
		switch {
		case lb.GetSimple() != networking.LoadBalancerSettings_UNSPECIFIED:
			d.printf("   Load balancer: %s\n", lb.GetSimple())
		case lb.GetConsistentHash() != nil:
			d.printf("   Load balancer: consistent hash\n")
		}
	}
	if cp := tp.GetConnectionPool(); cp != nil {
		var parts []string
		if n := cp.GetTcp().GetMaxConnections(); n > 0 {
			parts = append(parts, fmt.Sprintf("max %d connections", n))
		}
		if n := cp.GetHttp().GetHttp1MaxPendingRequests(); n > 0 {
			parts = append(parts, fmt.Sprintf("max %d pending requests", n))
		}
		if n := cp.GetHttp().GetHttp2MaxRequests(); n > 0 {
			parts = append(parts, fmt.Sprintf("max %d requests", n))
		}
		if len(parts) > 0 {
			d.printf("   Connection pool: %s\n", strings.Join(parts, ", "))
		}
	}
	if od := tp.GetOutlierDetection(); od != nil {
		n := od.GetConsecutive_5XxErrors().GetValue()
		if od.GetConsecutive_5XxErrors() == nil && od.GetConsecutiveErrors() > 0 {
			n = uint32(od.GetConsecutiveErrors())
		}
		d.printf("   Outlier detection: ejects a host after %d consecutive 5xx\n", n)
	}
}

// virtualServices describes the sidecar routes (gateway "mesh") that clients
// in p's namespace have for svc: for each route its match and where it sends
// requests, marking what reaches pod (nil: describing the service).
func (d *describer) virtualServices(p *model.Proxy, svc *registry.Service, dr *model.MergedDestinationRule, pod *registry.Workload) {
	var vss []*model.VirtualService
	for _, vs := range d.snap.VirtualServicesFor(p, model.MeshGateway) {
		if slices.ContainsFunc(vs.Hosts, func(h string) bool { return model.HostMatches(h, svc.Hostname) }) {
			vss = append(vss, vs)
		}
	}
	if len(vss) == 0 {
		d.printf("VirtualService: none (requests go to every endpoint of the service)\n")
		return
	}
	for _, vs := range vss {
		d.printf("VirtualService: %s\n", vs.Ref())
		reaches := d.routes(vs, svc, dr, pod, "   ")
		if pod != nil && !reaches {
			d.printf("   WARNING: no route of %s sends requests to this pod\n", vs.Ref())
		}
	}
}

// routes writes vs's HTTP and TCP routes and whether one of them reaches pod.
func (d *describer) routes(vs *model.VirtualService, svc *registry.Service, dr *model.MergedDestinationRule, pod *registry.Workload, indent string) bool {
	reaches := false
	dest := func(host, subset string, port uint32, weight int32, many bool) string {
		s := host
		if port != 0 {
			s += fmt.Sprintf(":%d", port)
		}
		if subset != "" {
			s += " subset " + subset
		}
		if many {
			s = fmt.Sprintf("%d%% to %s", weight, s)
		}
		if pod != nil && host == svc.Hostname {
			sub := dr.Subset(subset)
			if subset == "" || sub != nil && registry.LabelsMatch(sub.GetLabels(), pod.Labels) {
				reaches = true
				s += " (this pod)"
			}
		}
		return s
	}
	for i, r := range vs.HTTP {
		var to []string
		for _, rd := range r.GetRoute() {
			to = append(to, dest(rd.GetDestination().GetHost(), rd.GetDestination().GetSubset(), rd.GetDestination().GetPort().GetNumber(), rd.GetWeight(), len(r.GetRoute()) > 1))
		}
		action := strings.Join(to, ", ")
		switch {
		case r.GetRedirect() != nil:
			action = "redirect to " + r.GetRedirect().GetAuthority() + r.GetRedirect().GetUri()
		case r.GetDirectResponse() != nil:
			action = fmt.Sprintf("direct response %d", r.GetDirectResponse().GetStatus())
		}
		var extras []string
		if f := r.GetFault(); f != nil {
			if a := f.GetAbort(); a != nil {
				extras = append(extras, fmt.Sprintf("fault: abort %d for %g%%", a.GetHttpStatus(), a.GetPercentage().GetValue()))
			}
			if dl := f.GetDelay(); dl != nil {
				extras = append(extras, fmt.Sprintf("fault: delay %s for %g%%", dl.GetFixedDelay().AsDuration(), dl.GetPercentage().GetValue()))
			}
		}
		if t := r.GetTimeout(); t != nil {
			extras = append(extras, "timeout "+t.AsDuration().String())
		}
		if rt := r.GetRetries(); rt != nil && rt.GetAttempts() > 0 {
			extras = append(extras, fmt.Sprintf("%d retries", rt.GetAttempts()))
		}
		if m := r.GetMirror(); m != nil {
			extras = append(extras, "mirrored to "+m.GetHost())
		}
		line := fmt.Sprintf("%sHTTP route %d: %s -> %s", indent, i+1, httpMatch(r.GetMatch()), action)
		if len(extras) > 0 {
			line += " (" + strings.Join(extras, ", ") + ")"
		}
		d.printf("%s\n", line)
	}
	for i, r := range vs.TCP {
		var to []string
		for _, rd := range r.GetRoute() {
			to = append(to, dest(rd.GetDestination().GetHost(), rd.GetDestination().GetSubset(), rd.GetDestination().GetPort().GetNumber(), rd.GetWeight(), len(r.GetRoute()) > 1))
		}
		var match []string
		for _, m := range r.GetMatch() {
			if m.GetPort() != 0 {
				match = append(match, fmt.Sprintf("port %d", m.GetPort()))
			}
		}
		if len(match) == 0 {
			match = []string{"any connection"}
		}
		d.printf("%sTCP route %d: %s -> %s\n", indent, i+1, strings.Join(match, " or "), strings.Join(to, ", "))
	}
	return reaches
}

// httpMatch says which requests an HTTP route takes: its match requests
// joined by "or", each condition joined by "and".
func httpMatch(ms []*networking.HTTPMatchRequest) string {
	if len(ms) == 0 {
		return "any request"
	}
	var alts []string
	for _, m := range ms {
		var c []string
		if s := stringMatch(m.GetUri()); s != "" {
			c = append(c, "uri "+s)
		}
		if s := stringMatch(m.GetMethod()); s != "" {
			c = append(c, "method "+s)
		}
		if s := stringMatch(m.GetAuthority()); s != "" {
			c = append(c, "authority "+s)
		}
		for _, k := range sortedKeys(m.GetHeaders()) {
			c = append(c, "header "+k+" "+stringMatch(m.GetHeaders()[k]))
		}
		for _, k := range sortedKeys(m.GetQueryParams()) {
			c = append(c, "query "+k+" "+stringMatch(m.GetQueryParams()[k]))
		}
		for _, k := range sortedKeys(m.GetWithoutHeaders()) {
			c = append(c, "without header "+k)
		}
		if m.GetPort() != 0 {
			c = append(c, fmt.Sprintf("port %d", m.GetPort()))
		}
		if len(m.GetSourceLabels()) > 0 {
			c = append(c, "from workloads "+labels(m.GetSourceLabels()))
		}
		if len(c) == 0 {
			c = []string{"any request"}
		}
		alts = append(alts, strings.Join(c, " and "))
	}
	return strings.Join(alts, " or ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func stringMatch(m *networking.StringMatch) string {
	switch {
	case m == nil:
		return ""
	case m.GetExact() != "":
		return fmt.Sprintf("exact %q", m.GetExact())
	case m.GetPrefix() != "":
		return fmt.Sprintf("prefix %q", m.GetPrefix())
	case m.GetRegex() != "":
		return fmt.Sprintf("regex %q", m.GetRegex())
	}
	return "present"
}

// exposure lists the Gateways whose VirtualServices route to one of svcs.
func (d *describer) exposure(svcs []*registry.Service) {
	any := false
	for _, gw := range d.snap.Gateways() {
		gp := &model.Proxy{Type: model.Router, Namespace: gw.Namespace, Labels: gw.Selector}
		var lines []string
		for _, vs := range d.snap.VirtualServicesFor(gp, gw.Ref()) {
			for _, svc := range svcs {
				if !routesTo(vs, svc.Hostname) {
					continue
				}
				var b strings.Builder
				sub := &describer{w: &b, snap: d.snap}
				sub.routes(vs, svc, nil, nil, "      ")
				lines = append(lines, fmt.Sprintf("   VirtualService: %s (hosts %s)\n%s", vs.Ref(), strings.Join(vs.Hosts, ", "), b.String()))
			}
		}
		if len(lines) == 0 {
			continue
		}
		any = true
		var servers []string
		for _, s := range gw.Servers {
			servers = append(servers, fmt.Sprintf("%s %d/%s hosts %s", s.GetPort().GetName(), s.GetPort().GetNumber(), s.GetPort().GetProtocol(), strings.Join(s.GetHosts(), ",")))
		}
		d.printf(rule)
		d.printf("Exposed on Gateway %s (selector %s): %s\n", gw.Ref(), labels(gw.Selector), strings.Join(servers, "; "))
		for _, l := range lines {
			d.printf("%s", l)
		}
	}
	if !any {
		d.printf(rule)
		d.printf("Not exposed on any gateway\n")
	}
}

// routesTo reports whether some route of vs has a destination host.
func routesTo(vs *model.VirtualService, host string) bool {
	for _, r := range vs.HTTP {
		for _, rd := range r.GetRoute() {
			if rd.GetDestination().GetHost() == host {
				return true
			}
		}
	}
	for _, r := range vs.TCP {
		for _, rd := range r.GetRoute() {
			if rd.GetDestination().GetHost() == host {
				return true
			}
		}
	}
	for _, r := range vs.TLS {
		for _, rd := range r.GetRoute() {
			if rd.GetDestination().GetHost() == host {
				return true
			}
		}
	}
	return false
}

package describe

import (
	"fmt"
	"strings"

	"github.com/bowline-mesh/bowline/internal/model"
)

// gatewayPod is the pod name in a router's node id
// (router~IP~POD.NAMESPACE~DOMAIN), else its workload name.
func gatewayPod(p *model.Proxy) string {
	parts := strings.Split(p.ID, "~")
	if len(parts) == 4 {
		if pod, _, ok := strings.Cut(parts[2], "."); ok {
			return pod
		}
	}
	return p.WorkloadName
}

// findGateway is the connected router t names by pod or workload name, or nil.
func findGateway(gws []*model.Proxy, t Target) *model.Proxy {
	for _, p := range gws {
		if p.Type != model.Router || t.Namespace != "" && p.Namespace != t.Namespace {
			continue
		}
		if gatewayPod(p) == t.Name || p.WorkloadName == t.Name {
			return p
		}
	}
	return nil
}

// gateway describes a gateway proxy: the Gateways it serves with their
// servers, the VirtualServices bound to each and their routes, and the
// authorization policies selecting it.
func (d *describer) gateway(p *model.Proxy) {
	d.printf("Gateway pod: %s.%s (workload %s)\n", gatewayPod(p), p.Namespace, p.WorkloadName)
	d.printf("   Labels: %s\n", labels(p.Labels))
	gws := d.snap.GatewaysFor(p)
	if len(gws) == 0 {
		d.printf("   WARNING: no Gateway selects this proxy's labels: it serves nothing\n")
	}
	for _, gw := range gws {
		d.printf(rule)
		d.printf("Gateway: %s (selector %s)\n", gw.Ref(), labels(gw.Selector))
		for _, s := range gw.Servers {
			tls := ""
			if t := s.GetTls(); t != nil {
				tls = ", TLS " + t.GetMode().String()
				if t.GetCredentialName() != "" {
					tls += " credential " + t.GetCredentialName()
				}
			}
			d.printf("   Server: %s %d/%s hosts %s%s\n", s.GetPort().GetName(), s.GetPort().GetNumber(), s.GetPort().GetProtocol(), strings.Join(s.GetHosts(), ", "), tls)
		}
		vss := d.snap.VirtualServicesFor(p, gw.Ref())
		if len(vss) == 0 {
			d.printf("   WARNING: no VirtualService is bound to %s: requests get 404\n", gw.Ref())
		}
		for _, vs := range vss {
			d.printf("   VirtualService: %s (hosts %s)\n", vs.Ref(), strings.Join(vs.Hosts, ", "))
			d.routes(vs, nil, nil, nil, "      ")
			for i, r := range vs.TLS {
				var to []string
				for _, rd := range r.GetRoute() {
					to = append(to, fmt.Sprintf("%s:%d", rd.GetDestination().GetHost(), rd.GetDestination().GetPort().GetNumber()))
				}
				var sni []string
				for _, m := range r.GetMatch() {
					sni = append(sni, m.GetSniHosts()...)
				}
				d.printf("      TLS route %d: SNI %s -> %s\n", i+1, strings.Join(sni, ", "), strings.Join(to, ", "))
			}
		}
	}
	d.printf(rule)
	d.authzProxy(p)
}

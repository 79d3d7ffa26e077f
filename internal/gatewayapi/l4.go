package gatewayapi

import (
	"fmt"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/bowline-mesh/bowline/internal/config"
)

// rulesBackends returns the backendRefs of each rule of a TCPRoute or TLSRoute.
func rulesBackends[R any](rules []R, refs func(R) []gwv1.BackendRef) [][]gwv1.BackendRef {
	out := make([][]gwv1.BackendRef, len(rules))
	for i, r := range rules {
		out[i] = refs(r)
	}
	return out
}

// l4Route attaches a TCPRoute or TLSRoute and emits, per listener it is
// accepted on, a VirtualService with a tcp route (TCPRoute) or a tls route
// matching the route's hostnames as SNI (TLSRoute, on a Passthrough
// listener). Backends that cannot be resolved are left out; a rule with
// none left has no route, so connections are closed.
func (t *translator) l4Route(c commonRoute, rules [][]gwv1.BackendRef) {
	o := c.obj
	var refs refResult
	var dests [][]*networking.RouteDestination
	for _, backends := range rules {
		var ds []*networking.RouteDestination
		for _, b := range backends {
			w := int32(1)
			if b.Weight != nil {
				w = *b.Weight
			}
			dst, ok := t.destination(o, b.BackendObjectReference, &refs)
			if !ok || w == 0 {
				continue
			}
			ds = append(ds, &networking.RouteDestination{Destination: dst, Weight: w})
		}
		if len(ds) == 1 {
			ds[0].Weight = 0
		}
		dests = append(dests, ds)
	}
	st := Status{Kind: o.GVK.Kind, Namespace: o.Meta.Namespace, Name: o.Meta.Name}
	report := false
	for _, ref := range c.parents {
		targets, ps, ours := t.attach(c, ref)
		if !ours {
			continue
		}
		report = true
		ps.Conditions = append(ps.Conditions, refs.condition(o.Meta.Generation))
		st.Parents = append(st.Parents, ps)
		for _, tg := range targets {
			vs := &networking.VirtualService{Hosts: tg.hosts, Gateways: []string{tg.gateway}}
			for _, ds := range dests {
				if len(ds) == 0 {
					continue
				}
				if o.GVK.Kind == config.KindTLSRoute {
					vs.Tls = append(vs.Tls, &networking.TLSRoute{
						Match: []*networking.TLSMatchAttributes{{SniHosts: tg.hosts, Port: tg.listenerPort}},
						Route: ds})
					continue
				}
				vs.Tcp = append(vs.Tcp, &networking.TCPRoute{Match: []*networking.L4MatchAttributes{{Port: tg.listenerPort}}, Route: ds})
			}
			if len(vs.Tcp) == 0 && len(vs.Tls) == 0 {
				continue
			}
			_, gwName, _ := strings.Cut(tg.gateway, "/")
			name := fmt.Sprintf("%s-%s-%s", o.Meta.Name, strings.ToLower(o.GVK.Kind), gwName)
			t.l4 = append(t.l4, synthetic(o, config.KindVirtualService, tg.ns, name, vs))
		}
	}
	if report {
		t.out.Status = append(t.out.Status, st)
	}
}

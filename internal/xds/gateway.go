package xds

import (
	"cmp"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/model"
)

// gatewayServer is one Gateway server bound to a router.
type gatewayServer struct {
	gw     *model.Gateway
	server *networking.Server
}

// isHTTPServer reports whether a Gateway server is plain HTTP the router
// serves through RDS.
func isHTTPServer(s *networking.Server) bool {
	switch strings.ToUpper(s.GetPort().GetProtocol()) {
	case "HTTP", "HTTP2", "GRPC", "GRPC-WEB":
		return true
	}
	return false
}

// buildRouter generates a gateway's resources (docs/xds.md "Gateway
// resources"): per server port a listener 0.0.0.0_<port> (bound to the
// BOWLINE_GATEWAY_PORTS override if any, on the BOWLINE_GATEWAY_ADDRESS
// address if given, else every address) with RDS "http.<port>" built from
// the VirtualServices bound to the Gateways selecting this router.
func (g *gen) buildRouter() {
	g.addStaticClusters()
	for _, svc := range g.snap.ServicesFor(g.proxy) {
		g.buildServiceClusters(svc)
	}
	byPort := map[uint32][]gatewayServer{}
	for _, gw := range g.snap.GatewaysFor(g.proxy) {
		for _, s := range gw.Servers {
			if isHTTPServer(s) {
				byPort[s.GetPort().GetNumber()] = append(byPort[s.GetPort().GetNumber()], gatewayServer{gw, s})
			}
		}
	}
	bind := "0.0.0.0"
	if g.proxy.GatewayAddress != "" {
		bind = g.proxy.GatewayAddress
	}
	for port, servers := range byPort {
		rc := g.gatewayRoutes(port, servers)
		g.routes[rc.Name] = rc
		listen := port
		for _, m := range g.proxy.GatewayPorts {
			if m.Port == port {
				listen = m.TargetPort
			}
		}
		name := "0.0.0.0_" + portName(port)
		hcm := g.rdsHCM("outbound_0.0.0.0_"+portName(port), rc.Name)
		hcm.UseRemoteAddress = wrapperspb.Bool(true)
		hcm.ServerName = istioServerName
		// Policies selecting the gateway (authz.go, jwt.go): jwt_authn and
		// RBAC first, as Istio orders a gateway's HCM.
		// Their ports name the Gateway server port, served on listen.
		hcm.HttpFilters = append(g.securityFilters(listenPorts{target: port, listen: listen}), hcm.HttpFilters...)
		g.listeners[name] = httpListener(name, bind, listen, true, corev3.TrafficDirection_OUTBOUND, hcm)
	}
}

// gatewayRoutes binds VirtualService hosts to the servers' hosts: a virtual
// host per intersection (the narrower of the two names), routes of every
// VirtualService sharing that host concatenated in order. A port with no
// bound VirtualService answers 404 from a "blackhole" virtual host.
func (g *gen) gatewayRoutes(port uint32, servers []gatewayServer) *routev3.RouteConfiguration {
	type vhost struct {
		host   string
		vsSeen map[string]bool
		routes []*routev3.Route
	}
	var vhosts []*vhost
	find := func(h string) *vhost {
		for _, v := range vhosts {
			if v.host == h {
				return v
			}
		}
		v := &vhost{host: h, vsSeen: map[string]bool{}}
		vhosts = append(vhosts, v)
		return v
	}
	for _, gs := range servers {
		for _, vs := range g.snap.VirtualServicesFor(g.proxy, gs.gw.Ref()) {
			for _, vsHost := range vs.Hosts {
				for _, sh := range gs.server.GetHosts() {
					host, ok := gatewayServerHost(sh, gs.gw.Namespace, vs.Namespace)
					if !ok {
						continue
					}
					h, ok := model.HostIntersection(host, vsHost)
					if !ok {
						continue
					}
					v := find(h)
					if v.vsSeen[vs.Ref()] {
						continue
					}
					v.vsSeen[vs.Ref()] = true
					v.routes = append(v.routes, g.vsRoutes(vs, routeScope{port: port, gateway: gs.gw.Ref()})...)
				}
			}
		}
	}
	slices.SortStableFunc(vhosts, func(a, b *vhost) int { return cmp.Compare(a.host, b.host) })
	rb := g.newRouteBuilder("http." + portName(port))
	for _, v := range vhosts {
		if len(v.routes) == 0 {
			continue
		}
		domains := []string{v.host}
		if v.host != "*" {
			domains = append(domains, v.host+":"+portName(port))
		}
		rb.add(v.host+":"+portName(port), domains, v.routes)
	}
	if len(rb.rc.VirtualHosts) == 0 {
		rb.add("blackhole:"+portName(port), []string{"*"}, []*routev3.Route{{
			Name:   "blackhole",
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 404}},
		}})
	}
	return rb.rc
}

// gatewayServerHost returns the host of a Gateway server's "[ns/]host"
// (lowercased) if a VirtualService in vsNS may bind to it: ns is "*" (also
// when absent), "." (the Gateway's namespace gwNS) or vsNS.
func gatewayServerHost(sh, gwNS, vsNS string) (string, bool) {
	ns, host, ok := strings.Cut(sh, "/")
	if !ok {
		ns, host = "*", sh
	}
	if ns == "." {
		ns = gwNS
	}
	if ns != "*" && ns != vsNS {
		return "", false
	}
	return strings.ToLower(host), true
}

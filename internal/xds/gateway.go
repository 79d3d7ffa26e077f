package xds

import (
	"cmp"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
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
// address if given, else every address) built by gatewayListener from the
// servers of the Gateways selecting this router on that port, with the
// clusters of every service and the SDS secrets of their credentials.
func (g *gen) buildRouter() {
	g.addStaticClusters()
	for _, svc := range g.snap.ServicesFor(g.proxy) {
		g.buildServiceClusters(svc)
	}
	byPort := map[uint32][]gatewayServer{}
	for _, gw := range g.snap.GatewaysFor(g.proxy) {
		for _, s := range gw.Servers {
			byPort[s.GetPort().GetNumber()] = append(byPort[s.GetPort().GetNumber()], gatewayServer{gw, s})
		}
	}
	for port, servers := range byPort {
		if l := g.gatewayListener(port, servers); l != nil {
			g.listeners[l.Name] = l
		}
	}
	g.gatewayClusterSecrets()
}

// gatewayBind returns the address and port the listener of Gateway port
// port binds.
func (g *gen) gatewayBind(port uint32) (string, uint32) {
	bind := "0.0.0.0"
	if g.proxy.GatewayAddress != "" {
		bind = g.proxy.GatewayAddress
	}
	listen := port
	for _, m := range g.proxy.GatewayPorts {
		if m.Port == port {
			listen = m.TargetPort
		}
	}
	return bind, listen
}

// gatewayListener builds the listener of one Gateway port from the servers
// on it (possibly of several Gateways). When every server is plain HTTP it
// is one HCM with RDS "http.<port>" (gatewayRoutes); otherwise each
// server becomes filter chains chosen by SNI (gatewayServerChains): HTTPS
// servers terminate TLS into their own RDS, TLS servers route by
// VirtualService tls (PASSTHROUGH) or tcp routes, TCP servers by tcp
// routes. Plain HTTP servers sharing a port with TLS servers are not
// served (Istio does not merge them either). It returns nil when no
// server yields a filter chain.
func (g *gen) gatewayListener(port uint32, servers []gatewayServer) *listenerv3.Listener {
	bind, listen := g.gatewayBind(port)
	name := "0.0.0.0_" + portName(port)
	allHTTP := true
	for _, gs := range servers {
		allHTTP = allHTTP && isHTTPServer(gs.server)
	}
	if allHTTP {
		rc := g.gatewayRoutes("http."+portName(port), port, servers)
		g.routes[rc.Name] = rc
		return httpListener(name, bind, listen, true, corev3.TrafficDirection_OUTBOUND, g.gatewayHCM(port, listen, rc.Name))
	}
	l := &listenerv3.Listener{Name: name, Address: socketAddress(bind, listen), TrafficDirection: corev3.TrafficDirection_OUTBOUND}
	seen := map[string]bool{} // Envoy rejects two chains with one match
	for _, gs := range servers {
		for _, fc := range g.gatewayServerChains(port, listen, gs) {
			key := chainMatchKey(fc.GetFilterChainMatch())
			if seen[key] {
				continue // an earlier server took these names
			}
			seen[key] = true
			l.FilterChains = append(l.FilterChains, fc)
			if fc.GetFilterChainMatch() != nil && len(l.ListenerFilters) == 0 {
				// SNI and TLS detection; a TCP-only port goes without, so
				// server-first protocols are not held up.
				l.ListenerFilters = []*listenerv3.ListenerFilter{tlsInspector()}
			}
		}
	}
	if len(l.FilterChains) == 0 {
		return nil
	}
	return l
}

// gatewayHCM is the HCM of a gateway HTTP(S) server: RDS rdsName, the
// client address from the connection, Istio's server header, and the
// policies selecting the gateway (authz.go, jwt.go): jwt_authn and RBAC
// first, as Istio orders a gateway's HCM; their ports name the Gateway
// server port, served on listen.
func (g *gen) gatewayHCM(port, listen uint32, rdsName string) *hcmv3.HttpConnectionManager {
	hcm := g.rdsHCM("outbound_0.0.0.0_"+portName(port), rdsName)
	hcm.UseRemoteAddress = wrapperspb.Bool(true)
	hcm.ServerName = istioServerName
	hcm.HttpFilters = append(g.securityFilters(listenPorts{target: port, listen: listen}), hcm.HttpFilters...)
	return hcm
}

// gatewayRoutes binds VirtualService hosts to the servers' hosts: a virtual
// host per intersection (the narrower of the two names), routes of every
// VirtualService sharing that host concatenated in order. A port with no
// bound VirtualService answers 404 from a "blackhole" virtual host.
func (g *gen) gatewayRoutes(name string, port uint32, servers []gatewayServer) *routev3.RouteConfiguration {
	type vhost struct {
		host       string
		vsSeen     map[string]bool
		routes     []*routev3.Route
		requireTLS bool
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
		if gs.server.GetTls().GetHttpsRedirect() {
			// httpsRedirect: every host of the server answers 301 to https
			// (Envoy's require_tls), routes or not.
			for _, sh := range gs.server.GetHosts() {
				_, host, ok := strings.Cut(sh, "/")
				if !ok {
					host = sh
				}
				find(strings.ToLower(host)).requireTLS = true
			}
		}
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
	rb := g.newRouteBuilder(name)
	for _, v := range vhosts {
		if len(v.routes) == 0 && !v.requireTLS {
			continue
		}
		domains := []string{v.host}
		if v.host != "*" {
			domains = append(domains, v.host+":"+portName(port))
		}
		if v.requireTLS {
			rb.addRequireTLS(v.host+":"+portName(port), domains, v.routes)
			continue
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

package xds

import (
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// buildSidecar generates a sidecar's resources (docs/xds.md "Sidecar
// resources"): the per-workload inbound part, then the outbound part, which
// depends only on the proxy's ScopeKey (scope.go).
func (g *gen) buildSidecar() {
	g.buildSidecarInbound()
	g.buildSidecarOutbound()
}

// buildSidecarInbound adds what depends on the workload itself: inbound
// listeners (its IP, ports, PeerAuthentication, AuthorizationPolicy,
// RequestAuthentication) and clusters, and for captured proxies
// virtualInbound.
func (g *gen) buildSidecarInbound() {
	for _, m := range g.proxy.Inbound {
		l := g.inboundListener(m.Port, g.inbound(m.Port).http)
		g.listeners[l.Name] = l
		g.addInboundCluster(m)
	}
	g.buildCaptureInbound() // capture.go
}

// buildSidecarOutbound adds the outbound part: static and service clusters,
// load assignments, route configurations and outbound listeners. It reads
// only what ScopeKey holds (scope.go, TestScopeKeyShares).
func (g *gen) buildSidecarOutbound() {
	g.addStaticClusters()
	g.outSvcs = g.snap.ServicesFor(g.proxy)
	svcs := g.withAutoVIPs(g.outSvcs) // capture.go: VIPs for captured proxies
	vss := g.snap.VirtualServicesFor(g.proxy, model.MeshGateway)
	perPort := map[uint32]*routeBuilder{}
	explicit := g.newRouteBuilder(ExplicitProxyRoute)
	for _, svc := range svcs {
		g.buildServiceClusters(svc)
		for _, port := range svc.Ports {
			if !port.IsHTTP() {
				g.addOutboundTCP(svc, port, vss)
				continue
			}
			rb := perPort[port.Number]
			if rb == nil {
				rb = g.newRouteBuilder(portName(port.Number))
				perPort[port.Number] = rb
				name := "0.0.0.0_" + portName(port.Number)
				g.listeners[name] = httpListener(name, "0.0.0.0", port.Number, false, corev3.TrafficDirection_OUTBOUND,
					g.rdsHCM("outbound_0.0.0.0_"+portName(port.Number), rb.rc.Name))
			}
			routes := g.serviceRoutes(svc, port, vss)
			vhName := svc.Hostname + ":" + portName(port.Number)
			rb.add(vhName, g.domains(svc, port, false), routes)
			if g.proxy.OutboundHTTP != "" { // explicit.rc is used only then
				explicit.add(vhName, g.domains(svc, port, true), routes)
			}
		}
	}
	for _, rb := range perPort { // unknown hosts (passthrough.go)
		g.addCatchAll(rb, PassthroughCluster)
		g.routes[rb.rc.Name] = rb.rc
	}
	if host, port, ok := splitHostPort(g.proxy.OutboundHTTP); ok {
		g.addCatchAll(explicit, AllowAnyDynamicDNSCluster)
		g.routes[ExplicitProxyRoute] = explicit.rc
		hcm := g.rdsHCM(ExplicitProxyRoute, ExplicitProxyRoute)
		g.explicitPassthrough(hcm)
		g.listeners[ExplicitProxyRoute] = httpListener(ExplicitProxyRoute, host, port, true, corev3.TrafficDirection_OUTBOUND, hcm)
	}
	g.buildCaptureOutbound() // capture.go
}

// serviceRoutes are the routes of svc:port: from the VirtualService that
// claims the host, else (or when none of its routes applies here) the default.
func (g *gen) serviceRoutes(svc *registry.Service, port registry.Port, vss []*model.VirtualService) []*routev3.Route {
	if vs := model.VirtualServiceForHost(g.proxy, vss, svc.Hostname); vs != nil {
		if routes := g.vsRoutes(vs, routeScope{port: port.Number, gateway: model.MeshGateway}); len(routes) > 0 {
			return routes
		}
	}
	return []*routev3.Route{g.defaultRoute(svc.Hostname, port.Number)}
}

// domains lists Istio's virtual host domains for svc:port: the FQDN, short
// names (the bare name only from the service's own namespace), VIPs, each
// with and without the port. For the explicit proxy every domain carries
// the port, and port 80 also appears without it.
func (g *gen) domains(svc *registry.Service, port registry.Port, explicit bool) []string {
	if g.cache != nil {
		return g.cache.domains(domainsKey{svc: svc, port: port.Number, local: svc.Namespace == g.proxy.Namespace,
			explicit: explicit, domain: g.snap.Domain()}, func() []string { return g.newDomains(svc, port, explicit) })
	}
	return g.newDomains(svc, port, explicit)
}

func (g *gen) newDomains(svc *registry.Service, port registry.Port, explicit bool) []string {
	names := []string{svc.Hostname}
	same, anyNS := model.ShortNames(svc.Hostname, g.snap.Domain())
	if svc.Namespace == g.proxy.Namespace {
		names = append(names, same...)
	}
	names = append(names, anyNS...)
	names = append(names, svc.Addresses...)
	p := ":" + portName(port.Number)
	var out []string
	for _, n := range names {
		if !explicit || port.Number == 80 {
			out = append(out, n)
		}
		out = append(out, n+p)
	}
	return out
}

// routeBuilder collects virtual hosts for one route configuration, dropping
// domains an earlier virtual host already took (Envoy rejects duplicates).
type routeBuilder struct {
	rc    *routev3.RouteConfiguration
	used  map[string]bool
	cache *Cache // reuses equal virtual hosts (cache.go); nil: none
}

func (g *gen) newRouteBuilder(name string) *routeBuilder {
	return &routeBuilder{rc: &routev3.RouteConfiguration{Name: name, ValidateClusters: wrapperspbFalse()}, used: map[string]bool{}, cache: g.cache}
}

func (b *routeBuilder) add(name string, domains []string, routes []*routev3.Route) {
	if ds := b.take(domains); len(ds) > 0 {
		b.rc.VirtualHosts = append(b.rc.VirtualHosts, b.cache.virtualHost(name, ds, routes))
	}
}

// addRequireTLS adds a virtual host that answers plaintext requests with a
// 301 to https (require_tls ALL: a Gateway server's httpsRedirect).
func (b *routeBuilder) addRequireTLS(name string, domains []string, routes []*routev3.Route) {
	if ds := b.take(domains); len(ds) > 0 {
		b.rc.VirtualHosts = append(b.rc.VirtualHosts, &routev3.VirtualHost{Name: name, Domains: ds, Routes: routes,
			RequireTls: routev3.VirtualHost_ALL})
	}
}

// take returns the domains no earlier virtual host took and marks them taken.
func (b *routeBuilder) take(domains []string) []string {
	ds := domains // usually none is taken: keep the (cached) slice
	for i, d := range domains {
		if b.used[d] {
			ds = slices.Clip(domains[:i])
			for _, d := range domains[i:] {
				if !b.used[d] {
					b.used[d] = true
					ds = append(ds, d)
				}
			}
			break
		}
		b.used[d] = true
	}
	return ds
}

// outboundTCPName is the name of svc's outbound TCP listener for port:
// "<vip>_<port>", or "0.0.0.0_<port>" without an address.
func outboundTCPName(svc *registry.Service, port registry.Port) string {
	addr := "0.0.0.0"
	if len(svc.Addresses) > 0 {
		addr = svc.Addresses[0]
	}
	return addr + "_" + portName(port.Number)
}

// addOutboundTCP adds "<vip>_<port>" (or 0.0.0.0_<port>) with tcp_proxy to
// the service, or to the first matching VirtualService tcp route.
func (g *gen) addOutboundTCP(svc *registry.Service, port registry.Port, vss []*model.VirtualService) {
	name := outboundTCPName(svc, port)
	addr, _, _ := strings.Cut(name, "_")
	if _, taken := g.listeners[name]; taken {
		return // first service wins a shared wildcard port, as in Istio
	}
	if g.tcpOwner != nil {
		g.tcpOwner[name] = svc.Hostname
	}
	tp := &tcpproxyv3.TcpProxy{StatPrefix: OutboundCluster(port.Number, "", svc.Hostname),
		ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: OutboundCluster(port.Number, "", svc.Hostname)}}
	if vs := model.VirtualServiceForHost(g.proxy, vss, svc.Hostname); vs != nil {
		sc := routeScope{port: port.Number, gateway: model.MeshGateway}
	routes:
		for _, r := range vs.TCP {
			for _, m := range r.GetMatch() {
				if m.GetPort() != 0 && m.GetPort() != port.Number {
					continue routes
				}
			}
			g.tcpRouteTarget(tp, r.GetRoute(), sc)
			break
		}
	}
	l := tcpListener(name, addr, port.Number, false, corev3.TrafficDirection_OUTBOUND, "", "")
	l.FilterChains[0].Filters = g.tcpFilters(tp, true)
	g.listeners[name] = l
}

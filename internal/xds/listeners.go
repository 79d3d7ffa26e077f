package xds

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// httpFilters returns the HCM filter chain: cors, fault, router for proxies
// (Istio's order); fault, router for proxyless gRPC (grpc-go has no CORS).
func (g *gen) httpFilters() []*hcmv3.HttpFilter {
	var fs []*hcmv3.HttpFilter
	if !g.grpc {
		fs = append(fs, &hcmv3.HttpFilter{Name: filterCORS, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(&corsv3.Cors{})}})
	}
	fs = append(fs,
		&hcmv3.HttpFilter{Name: filterFault, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(&faultv3.HTTPFault{})}},
		&hcmv3.HttpFilter{Name: filterRouter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(&routerv3.Router{})}})
	return fs
}

// istioServerName is the server header Istio's inbound sidecars and
// gateways send (Istio's ProxyHeaders default); outbound HCMs leave
// server_name unset, so Envoy's default "envoy" applies there, as in Istio.
const istioServerName = "istio-envoy"

// rdsHCM is an HCM that takes route rdsName over ADS.
func (g *gen) rdsHCM(statPrefix, rdsName string) *hcmv3.HttpConnectionManager {
	return &hcmv3.HttpConnectionManager{
		StatPrefix: statPrefix,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource: adsSource(), RouteConfigName: rdsName}},
		HttpFilters: g.withStats(g.httpFilters(), true),
		Tracing:     g.hcmTracing(true),
		AccessLog:   g.hcmAccessLogs(true),
	}
}

// httpListener binds an HCM to addr:port.
func httpListener(name, addr string, port uint32, bind bool, dir corev3.TrafficDirection, hcm *hcmv3.HttpConnectionManager) *listenerv3.Listener {
	return listener(name, addr, port, bind, dir, filterHCM, hcm)
}

func tcpListener(name, addr string, port uint32, bind bool, dir corev3.TrafficDirection, statPrefix, cluster string) *listenerv3.Listener {
	tp := &tcpproxyv3.TcpProxy{StatPrefix: statPrefix, ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster}}
	return listener(name, addr, port, bind, dir, filterTCPProxy, tp)
}

// listener is addr:port with one filter chain of the one network filter
// named filter, configured by cfg; an unbound one only takes connections
// handed over by another listener.
func listener(name, addr string, port uint32, bind bool, dir corev3.TrafficDirection, filter string, cfg proto.Message) *listenerv3.Listener {
	l := &listenerv3.Listener{
		Name:             name,
		Address:          socketAddress(addr, port),
		TrafficDirection: dir,
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name: filter, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(cfg)}}}}},
	}
	if !bind {
		l.BindToPort = wrapperspb.Bool(false)
	}
	return l
}

// inboundListener is "inbound|PORT" on the instance IP: HTTP to
// inbound|PORT|| through an inline route, or tcp_proxy for TCP ports.
func (g *gen) inboundListener(port uint32, http bool) *listenerv3.Listener {
	name := "inbound|" + portName(port)
	addr := "0.0.0.0"
	if len(g.proxy.IPs) > 0 {
		addr = g.proxy.IPs[0]
	}
	cluster := InboundCluster(port)
	if !http {
		tp := &tcpproxyv3.TcpProxy{StatPrefix: "inbound_" + portName(port), ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster}}
		l := tcpListener(name, addr, port, true, corev3.TrafficDirection_INBOUND, "", "")
		// Security (authz.go): network RBAC filters go before istio.stats
		// and tcp_proxy.
		fc := l.FilterChains[0]
		fc.Filters = append(g.authzNetworkFilters(g.inboundListen(port)), g.tcpFilters(tp, false)...)
		g.applyPeerAuthn(l, port)
		return l
	}
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: "inbound_" + portName(port),
		ServerName: istioServerName,
		// Path normalization before RBAC and routing (authz.NormalizePath):
		// Istio's DECODE_AND_MERGE_SLASHES, so /a/../admin, //admin and
		// %2F tricks cannot slip past a path rule.
		NormalizePath:                wrapperspb.Bool(true),
		MergeSlashes:                 true,
		PathWithEscapedSlashesAction: hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD,
		// Istio's names: the route configuration is the inbound cluster of
		// the workload port, the virtual host "inbound|http|" and the service
		// port (what EnvoyFilter matches name).
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: InboundCluster(g.inbound(port).target),
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    "inbound|http|" + portName(g.inbound(port).servicePort),
				Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Name:      "default",
					Match:     &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Decorator: &routev3.Decorator{Operation: g.inboundOperation(port)},
					Action: &routev3.Route_Route{Route: &routev3.RouteAction{
						ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
						Timeout:          durationpb.New(0),
					}},
				}},
			}},
		}},
		// Security (jwt.go, authz.go): jwt_authn, then the RBAC filters
		// (CUSTOM, AUDIT, DENY, ALLOW), then the router.
		HttpFilters: g.withStats(append(g.securityFilters(g.inboundListen(port)),
			&hcmv3.HttpFilter{Name: filterRouter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(&routerv3.Router{})}}), false),
		Tracing:   g.hcmTracing(false),
		AccessLog: g.hcmAccessLogs(false),
	}
	l := httpListener(name, addr, port, true, corev3.TrafficDirection_INBOUND, hcm)
	g.applyPeerAuthn(l, port)
	return l
}

// applyPeerAuthn replaces an inbound listener's single plaintext chain with
// the chains its PeerAuthentication mode asks for (peerauthn.go).
func (g *gen) applyPeerAuthn(l *listenerv3.Listener, port uint32) {
	chains, inspect := g.mtlsChains(port, l.FilterChains[0].Filters)
	l.FilterChains = chains
	if inspect {
		l.ListenerFilters = append(l.ListenerFilters, tlsInspector())
		g.detectionTimeout(l)
	}
}

// detectionTimeout sets how long a listener's inspectors wait for a client's
// first bytes, as Istio does: MeshConfig protocolDetectionTimeout (0s, the
// default, waits as long as the client takes), after which the connection
// goes on as plaintext (continue_on_listener_filters_timeout), so a
// plaintext client of a server-first protocol (MySQL, SMTP) gets its
// server's greeting once the timeout passes.
func (g *gen) detectionTimeout(l *listenerv3.Listener) {
	t := g.snap.Mesh().Raw().GetProtocolDetectionTimeout()
	if t == nil {
		t = durationpb.New(0)
	}
	l.ListenerFiltersTimeout = t
	l.ContinueOnListenerFiltersTimeout = true
}

package xds

import (
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	origdstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// Transparent capture (INTERCEPTION_MODE: REDIRECT): iptables in the
// workload's network namespace sends outbound TCP to 15001 and inbound TCP to
// 15006 (internal/capture). The sidecar then gets Istio's two catch-all
// listeners instead of the per-port inbound listeners:
//
//   - virtualOutbound (0.0.0.0:15001, use_original_dst) hands each connection
//     to the bind_to_port:false listener of its original destination
//     (<vip>_<port>, else 0.0.0.0_<port>); others take the default chain,
//     PassthroughCluster (ALLOW_ANY, Istio's default outboundTrafficPolicy).
//   - virtualInbound (0.0.0.0:15006, original_dst listener filter) picks a
//     filter chain by original destination port: the chain the inbound|<port>
//     listener would have had (so inbound filters such as RBAC carry over),
//     else a passthrough to the original destination.
//
// Services without addresses get auto-allocated VIPs (model.AutoVIPs), the
// same ones `bowline up --netns` writes into each namespace's hosts file.
const (
	VirtualOutboundListener = "virtualOutbound"
	VirtualInboundListener  = "virtualInbound"
	// InboundPassthroughCluster connects inbound traffic for undeclared ports
	// to its original destination (Istio's name).
	InboundPassthroughCluster = "InboundPassthroughCluster"
	// VirtualOutboundPort and VirtualInboundPort are Istio's capture ports.
	VirtualOutboundPort = 15001
	VirtualInboundPort  = 15006
	// InboundPassthroughSource is the address InboundPassthroughCluster
	// connects from (Istio's; internal/capture never captures it).
	InboundPassthroughSource = "127.0.0.6"

	listenerOriginalDst = "envoy.filters.listener.original_dst"
)

// captured reports whether the proxy's traffic arrives through iptables.
func (g *gen) captured() bool {
	return !g.grpc && g.proxy.Type == model.SidecarProxy && g.proxy.InterceptionMode == model.InterceptionRedirect
}

// withAutoVIPs returns svcs with an auto-allocated VIP on every service that
// has no address, for captured proxies (others get svcs unchanged). The
// services are copies; the snapshot's are never modified.
func (g *gen) withAutoVIPs(svcs []*registry.Service) []*registry.Service {
	if !g.captured() {
		return svcs
	}
	if g.cache != nil {
		return g.cache.autoVIPServices(g.snap, svcs)
	}
	vips := model.AutoVIPs(g.snap.Services())
	out := make([]*registry.Service, len(svcs))
	for i, s := range svcs {
		out[i] = s
		if vip, ok := vips[s.Hostname]; ok && len(s.Addresses) == 0 {
			c := *s
			c.Addresses = []string{vip.String()}
			out[i] = &c
		}
	}
	return out
}

// buildCaptureInbound replaces the sidecar's bound inbound listeners with
// virtualInbound. It runs after the inbound listeners are built.
func (g *gen) buildCaptureInbound() {
	if !g.captured() {
		return
	}
	g.listeners[VirtualInboundListener] = g.virtualInbound()
	// Like Istio's: connect from 127.0.0.6, which the pod's ISTIO_OUTPUT
	// lets through, so the connection to the pod's own IP reaches the app
	// instead of being captured again (a loop back into 15006).
	pass := originalDstCluster(InboundPassthroughCluster)
	pass.UpstreamBindConfig = &corev3.BindConfig{SourceAddress: &corev3.SocketAddress{
		Address: InboundPassthroughSource, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0}}}
	g.clusters[InboundPassthroughCluster] = pass
}

// buildCaptureOutbound adds virtualOutbound.
func (g *gen) buildCaptureOutbound() {
	if !g.captured() {
		return
	}
	g.listeners[VirtualOutboundListener] = g.virtualOutbound()
}

// virtualInbound moves each inbound|<port> listener's filter chain into one
// chain matched by destination port, and removes the listener.
func (g *gen) virtualInbound() *listenerv3.Listener {
	l := &listenerv3.Listener{
		Name:             VirtualInboundListener,
		Address:          socketAddress("0.0.0.0", VirtualInboundPort),
		TrafficDirection: corev3.TrafficDirection_INBOUND,
		ListenerFilters: []*listenerv3.ListenerFilter{{Name: listenerOriginalDst,
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: toAny(&origdstv3.OriginalDst{})}}},
	}
	ports := make([]uint32, 0, len(g.proxy.Inbound))
	for _, m := range g.proxy.Inbound {
		ports = append(ports, m.Port)
	}
	slices.Sort(ports)
	for _, port := range ports {
		name := "inbound|" + portName(port)
		in := g.listeners[name]
		if in == nil || len(in.FilterChains) == 0 {
			continue
		}
		delete(g.listeners, name)
		for _, fc := range in.FilterChains {
			c := proto.Clone(fc).(*listenerv3.FilterChain)
			c.Name = "0.0.0.0_" + portName(port)
			if c.FilterChainMatch == nil { // mTLS chains (peerauthn.go) keep their transport match
				c.FilterChainMatch = &listenerv3.FilterChainMatch{}
			}
			c.FilterChainMatch.DestinationPort = wrapperspb.UInt32(port)
			l.FilterChains = append(l.FilterChains, c)
		}
		if len(in.ListenerFilters) > 0 && !hasTLSInspector(l) {
			l.ListenerFilters = append(l.ListenerFilters, tlsInspector())
			g.detectionTimeout(l)
		}
	}
	l.FilterChains = append(l.FilterChains,
		// A connection to 15006 itself would loop: Istio drops it.
		tcpChain("virtualInbound-blackhole", VirtualInboundPort, BlackHoleCluster),
		tcpChain("virtualInbound", 0, InboundPassthroughCluster))
	return l
}

func hasTLSInspector(l *listenerv3.Listener) bool {
	for _, f := range l.ListenerFilters {
		if f.GetName() == listenerTLSInspector {
			return true
		}
	}
	return false
}

// virtualOutbound is 0.0.0.0:15001 with use_original_dst.
func (g *gen) virtualOutbound() *listenerv3.Listener {
	def := tcpChain("virtualOutbound-catchall-tcp", 0, g.outboundCatchAllCluster()) // passthrough.go
	return &listenerv3.Listener{
		Name:             VirtualOutboundListener,
		Address:          socketAddress("0.0.0.0", VirtualOutboundPort),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		UseOriginalDst:   wrapperspb.Bool(true),
		// A connection to 15001 itself would loop: Istio drops it.
		FilterChains:       []*listenerv3.FilterChain{tcpChain("virtualOutbound-blackhole", VirtualOutboundPort, BlackHoleCluster)},
		DefaultFilterChain: def,
	}
}

// tcpChain is a filter chain with one tcp_proxy to cluster (stat_prefix =
// cluster, as Istio names them), matching port when non-zero.
func tcpChain(name string, port uint32, cluster string) *listenerv3.FilterChain {
	fc := &listenerv3.FilterChain{
		Name: name,
		Filters: []*listenerv3.Filter{{Name: filterTCPProxy, ConfigType: &listenerv3.Filter_TypedConfig{
			TypedConfig: toAny(&tcpproxyv3.TcpProxy{StatPrefix: cluster, ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster}})}}},
	}
	if port != 0 {
		fc.FilterChainMatch = &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(port)}
	}
	return fc
}

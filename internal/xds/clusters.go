package xds

import (
	"math"
	"slices"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// defaultConnectTimeout is Istio's mesh default connectTimeout.
const defaultConnectTimeout = 10 * time.Second

// buildServiceClusters adds the clusters (and EDS assignments) for every
// port of svc: the subset-less one and one per DestinationRule subset.
func (g *gen) buildServiceClusters(svc *registry.Service) {
	if g.grpc && svc.Resolution == registry.ResolutionNone {
		return // grpc-go has no ORIGINAL_DST
	}
	dr := g.snap.DestinationRuleFor(g.proxy, svc.Hostname, svc.Namespace)
	if g.cache == nil {
		g.addServiceClusters(svc, dr)
		return
	}
	key, ok := clusterKeyFor(svc, dr, g.grpc, g.proxy.Type == model.Router, g.namespaceMTLSMode(svc.Namespace), g.snap.NoCA())
	if !ok {
		g.addServiceClusters(svc, dr)
		return
	}
	sc := g.cache.serviceClusters(key, func() *serviceClusters {
		sub := newGen(g.snap, g.proxy)
		sub.addServiceClusters(svc, dr)
		out := &serviceClusters{}
		for _, c := range sub.clusters {
			out.clusters = append(out.clusters, c)
		}
		for _, e := range sub.endpoints {
			out.endpoints = append(out.endpoints, e)
		}
		return out
	})
	for _, c := range sc.clusters {
		g.clusters[c.Name] = c
	}
	for _, e := range sc.endpoints {
		g.endpoints[e.ClusterName] = e
	}
}

// buildServiceEndpoints adds the load assignments buildServiceClusters
// would add for svc, without its clusters: for a service whose clusters
// are known to be unchanged (endpointsOnly).
func (g *gen) buildServiceEndpoints(svc *registry.Service) {
	dr := g.snap.DestinationRuleFor(g.proxy, svc.Hostname, svc.Namespace)
	build := func() []*endpointv3.ClusterLoadAssignment {
		var out []*endpointv3.ClusterLoadAssignment
		var top *networking.TrafficPolicy
		if dr != nil {
			top = dr.TrafficPolicy
		}
		for _, port := range svc.Ports {
			out = append(out, loadAssignment(OutboundCluster(port.Number, "", svc.Hostname), port,
				healthyUnless(svc.Endpoints, effectivePolicy(port.Number, top, nil)), true))
			if dr == nil {
				continue
			}
			for _, sub := range dr.Subsets {
				name := OutboundCluster(port.Number, sub.GetName(), svc.Hostname)
				eps := healthyUnless(selectEndpoints(svc.Endpoints, sub.GetLabels()), effectivePolicy(port.Number, top, sub.GetTrafficPolicy()))
				out = append(out, loadAssignment(name, port, eps, true))
			}
		}
		return out
	}
	var las []*endpointv3.ClusterLoadAssignment
	if key, ok := rulesKeyFor(dr); ok && g.cache != nil {
		las = load(g.cache, &g.cache.endpointSets, endpointsKey{svc: svc, rulesKey: key}, build)
	} else {
		las = build()
	}
	for _, e := range las {
		g.endpoints[e.ClusterName] = e
	}
}

// endpointsOnly reports whether the clusters of a service changing from
// old to svc (the same definition, model.Changes.Endpoints) are unchanged:
// EDS clusters read their endpoints only for the SANs of auto mTLS and
// ISTIO_MUTUAL (their service accounts); everything else goes to the load
// assignments (addCluster).
func endpointsOnly(old, svc *registry.Service) bool {
	return svc.Resolution == registry.ResolutionStatic && old.Resolution == registry.ResolutionStatic &&
		slices.Equal(serviceSANs(old), serviceSANs(svc))
}

// addServiceClusters builds what buildServiceClusters adds: it reads only
// svc, dr, whether the proxy is proxyless gRPC and the namespace mTLS mode
// of svc (the Cache key, clusterKey).
func (g *gen) addServiceClusters(svc *registry.Service, dr *model.MergedDestinationRule) {
	from := ""
	if dr != nil && len(dr.Rules) > 0 {
		from = configPath(kindDestinationRule, dr.Rules[0].Namespace, dr.Rules[0].Name)
	}
	for _, port := range svc.Ports {
		var top *networking.TrafficPolicy
		if dr != nil {
			top = dr.TrafficPolicy
		}
		g.addCluster(svc, port, "", nil, effectivePolicy(port.Number, top, nil), from)
		if dr == nil {
			continue
		}
		for _, sub := range dr.Subsets {
			g.addCluster(svc, port, sub.GetName(), sub.GetLabels(), effectivePolicy(port.Number, top, sub.GetTrafficPolicy()), from)
		}
	}
}

// addCluster adds the outbound cluster of svc's port (and subset, selecting
// labels) under pol; from is the configPath of the DestinationRule behind
// pol, "" for none.
func (g *gen) addCluster(svc *registry.Service, port registry.Port, subset string, labels map[string]string, pol policy, from string) {
	name := OutboundCluster(port.Number, subset, svc.Hostname)
	c := &clusterv3.Cluster{
		Name:           name,
		ConnectTimeout: durationpb.New(defaultConnectTimeout),
		LbPolicy:       clusterv3.Cluster_ROUND_ROBIN,
	}
	if !g.grpc { // Istio's telemetry metadata: the client reports destination_service* from it (inbound.go)
		md := map[string]*structpb.Value{"services": g.serviceMetadata([]*registry.Service{svc})}
		if from != "" {
			md[metadataConfig] = structpb.NewStringValue(from)
		}
		c.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{metadataIstio: {Fields: md}}}
	}
	eps := selectEndpoints(svc.Endpoints, labels)
	// A headless Service passes a sidecar's traffic to the address the app
	// dialled; a gateway has no such address and balances over the
	// Service's endpoints, as istiod programs gateways.
	passthrough := svc.Resolution == registry.ResolutionNone && g.proxy.Type != model.Router
	switch {
	case passthrough:
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}
		c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED
	case svc.Resolution == registry.ResolutionStatic || svc.Resolution == registry.ResolutionNone:
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
		c.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource(), ServiceName: name}
		g.endpoints[name] = loadAssignment(name, port, healthyUnless(eps, pol), true)
	case svc.Resolution == registry.ResolutionDNSRoundRobin || g.grpc:
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS}
		c.DnsLookupFamily = clusterv3.Cluster_V4_ONLY
		if len(eps) > 1 {
			eps = eps[:1]
		}
		c.LoadAssignment = loadAssignment(name, port, eps, false)
	default:
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
		c.DnsLookupFamily = clusterv3.Cluster_V4_ONLY
		c.LoadAssignment = loadAssignment(name, port, eps, false)
	}
	if !passthrough {
		c.CircuitBreakers = defaultCircuitBreakers()
		g.applyPolicy(c, svc, port, subset, pol)
	}
	g.clusters[name] = c
}

// defaultCircuitBreakers are Istio's: effectively unlimited unless a
// connectionPool says otherwise.
func defaultCircuitBreakers() *clusterv3.CircuitBreakers {
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		MaxConnections:     u32(math.MaxUint32),
		MaxPendingRequests: u32(math.MaxUint32),
		MaxRequests:        u32(math.MaxUint32),
		MaxRetries:         u32(math.MaxUint32),
		TrackRemaining:     true,
	}}}
}

// addStaticClusters adds BlackHoleCluster and PassthroughCluster.
func (g *gen) addStaticClusters() {
	g.clusters[BlackHoleCluster] = &clusterv3.Cluster{
		Name:                 BlackHoleCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(defaultConnectTimeout),
		LoadAssignment:       &endpointv3.ClusterLoadAssignment{ClusterName: BlackHoleCluster},
	}
	g.clusters[PassthroughCluster] = originalDstCluster(PassthroughCluster)
}

// originalDstCluster is a cluster named name that forwards to the
// connection's original destination.
func originalDstCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		ConnectTimeout:       durationpb.New(defaultConnectTimeout),
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		CircuitBreakers:      defaultCircuitBreakers(),
	}
}

// addInboundCluster adds "inbound|port||": STATIC to 127.0.0.1:target, with
// Istio's telemetry metadata naming the services served there (inbound.go).
func (g *gen) addInboundCluster(m model.PortMapping) {
	name := InboundCluster(m.Port)
	// Like Istio's inbound clusters: talk to the app in the protocol the
	// request arrived in, so gRPC and h2c apps get HTTP/2.
	opts := &httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
		UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{
			HttpProtocolOptions:  &corev3.Http1ProtocolOptions{},
			Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
		}}}
	g.clusters[name] = &clusterv3.Cluster{
		TypedExtensionProtocolOptions: map[string]*anypb.Any{httpOptionsKey: toAny(opts)},
		Name:                          name,
		ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:                durationpb.New(defaultConnectTimeout),
		LbPolicy:                      clusterv3.Cluster_ROUND_ROBIN,
		CircuitBreakers:               defaultCircuitBreakers(),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
				Endpoint: &endpointv3.Endpoint{Address: socketAddress("127.0.0.1", m.TargetPort)}}}},
		}}},
	}
	if svcs := g.inbound(m.Port).services; len(svcs) > 0 {
		g.clusters[name].Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			metadataIstio: {Fields: map[string]*structpb.Value{"services": g.serviceMetadata(svcs)}}}}
	}
}

func u32(v uint32) *wrapperspb.UInt32Value { return &wrapperspb.UInt32Value{Value: v} }

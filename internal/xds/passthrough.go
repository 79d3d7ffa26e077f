package xds

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	dfpclusterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/clusters/dynamic_forward_proxy/v3"
	dfpcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/dynamic_forward_proxy/v3"
	dfpfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/dynamic_forward_proxy/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bowline-mesh/bowline/internal/model"
)

// Traffic to hosts no service claims follows Istio's outboundTrafficPolicy
// (the proxy's Sidecar, else the MeshConfig; ALLOW_ANY by default):
//
//   - ALLOW_ANY: the last virtual host of every per-port route
//     configuration, allow_any, routes to PassthroughCluster (ORIGINAL_DST:
//     where a captured connection was going), and virtualOutbound's default
//     chain too. The explicit proxy has no original destination: its
//     allow_any routes to AllowAnyDynamicDNSCluster, an Envoy dynamic
//     forward proxy cluster that connects to the request's authority (the
//     HCM carries envoy.filters.http.dynamic_forward_proxy, as Envoy needs).
//   - REGISTRY_ONLY: the last virtual host is block_all, answering 502, and
//     virtualOutbound's default chain goes to BlackHoleCluster, as in Istio.
const (
	// AllowAnyDynamicDNSCluster is Istio's name for the dynamic forward
	// proxy cluster of unknown hosts.
	AllowAnyDynamicDNSCluster = "AllowAnyDynamicDNSCluster"
	clusterTypeDFP            = "envoy.clusters.dynamic_forward_proxy"
	filterDFP                 = "envoy.filters.http.dynamic_forward_proxy"
	// dfpCacheName is the DNS cache the DFP filter and cluster share.
	dfpCacheName = "allow_any_dynamic_dns"
	// Virtual host names of the catch-all, as Istio names them.
	vhostAllowAny = "allow_any"
	vhostBlockAll = "block_all"
)

// registryOnly reports whether unknown hosts are refused for this proxy.
func (g *gen) registryOnly() bool {
	return g.snap.OutboundPolicyFor(g.proxy) == model.RegistryOnly
}

// addCatchAll adds the virtual host for unknown hosts (domains *) as the
// last of rb: to cluster under ALLOW_ANY, 502 under REGISTRY_ONLY.
func (g *gen) addCatchAll(rb *routeBuilder, cluster string) {
	match := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	if g.registryOnly() {
		rb.add(vhostBlockAll, []string{"*"}, []*routev3.Route{{Name: vhostBlockAll, Match: match,
			Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 502}}}})
		return
	}
	ra := &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}
	if cluster == AllowAnyDynamicDNSCluster {
		ra.Timeout = durationpb.New(0) // Istio disables the timeout of passthrough routes
	}
	rb.add(vhostAllowAny, []string{"*"}, []*routev3.Route{{Name: vhostAllowAny, Match: match,
		Action: &routev3.Route_Route{Route: ra}}})
}

// outboundCatchAllCluster is the cluster of virtualOutbound's default chain.
func (g *gen) outboundCatchAllCluster() string {
	if g.registryOnly() {
		return BlackHoleCluster
	}
	return PassthroughCluster
}

// explicitPassthrough makes the explicit proxy's HCM forward unknown hosts
// to their authority (ALLOW_ANY): the DFP filter before the router, and the
// DFP cluster. Under REGISTRY_ONLY it changes nothing.
func (g *gen) explicitPassthrough(hcm *hcmv3.HttpConnectionManager) {
	if g.registryOnly() {
		return
	}
	cache := &dfpcommonv3.DnsCacheConfig{Name: dfpCacheName, DnsLookupFamily: clusterv3.Cluster_V4_ONLY}
	f := &hcmv3.HttpFilter{Name: filterDFP, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(&dfpfilterv3.FilterConfig{
		ImplementationSpecifier: &dfpfilterv3.FilterConfig_DnsCacheConfig{DnsCacheConfig: cache}})}}
	n := len(hcm.HttpFilters) - 1 // the router stays last
	hcm.HttpFilters = append(hcm.HttpFilters[:n:n], f, hcm.HttpFilters[n])
	g.clusters[AllowAnyDynamicDNSCluster] = &clusterv3.Cluster{
		Name: AllowAnyDynamicDNSCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_ClusterType{ClusterType: &clusterv3.Cluster_CustomClusterType{
			Name: clusterTypeDFP,
			TypedConfig: toAny(&dfpclusterv3.ClusterConfig{
				ClusterImplementationSpecifier: &dfpclusterv3.ClusterConfig_DnsCacheConfig{DnsCacheConfig: cache},
				AllowInsecureClusterOptions:    true, // plaintext upstreams, as Istio sets without TLS
			})}},
		LbPolicy:        clusterv3.Cluster_CLUSTER_PROVIDED,
		ConnectTimeout:  durationpb.New(defaultConnectTimeout),
		CircuitBreakers: defaultCircuitBreakers(),
	}
}

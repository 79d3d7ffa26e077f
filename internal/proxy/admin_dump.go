package proxy

import (
	"encoding/json"
	"net"
	"net/http"
	"sort"
	"strconv"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsclient"
)

// xdsClusterName is the bootstrap's name for the control plane, as Istio's.
const xdsClusterName = "xds-grpc"

// configDump serves Envoy's /config_dump: {"configs": [...]} with a
// BootstrapConfigDump, ClustersConfigDump, ListenersConfigDump and
// RoutesConfigDump (and EndpointsConfigDump with ?include_eds, as Envoy),
// in proto field names, so istioctl-style tools read it. Bowline adds the
// xDS client's state beside "configs": "connected", "acks", "nacks" and
// "last_nack" (the last rejection, naming the resource and field).
func (p *Proxy) configDump(w http.ResponseWriter, r *http.Request) {
	st := p.xds.State()
	_, includeEDS := r.URL.Query()["include_eds"]
	dumps := []proto.Message{p.bootstrapDump(), clustersDump(st), listenersDump(st), routesDump(st)}
	if includeEDS {
		dumps = append(dumps, endpointsDump(st))
	}
	mo := protojson.MarshalOptions{UseProtoNames: true}
	configs := make([]json.RawMessage, 0, len(dumps))
	for _, d := range dumps {
		a, err := anypb.New(d)
		if err != nil {
			http.Error(w, "config dump: "+err.Error(), http.StatusInternalServerError)
			return
		}
		b, err := mo.Marshal(a)
		if err != nil {
			http.Error(w, "config dump: "+err.Error(), http.StatusInternalServerError)
			return
		}
		configs = append(configs, b)
	}
	acks, nacks, last := p.xds.Stats()
	out := map[string]any{"configs": configs, "acks": acks, "nacks": nacks, "connected": p.xds.Connected()}
	if last != "" {
		out["last_nack"] = last
	}
	w.Header().Set("content-type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
}

// bootstrapDump describes how this proxy was started in Envoy's bootstrap
// terms: its node, its admin address, and ADS to the control plane.
func (p *Proxy) bootstrapDump() *adminv3.BootstrapConfigDump {
	ads := &corev3.ConfigSource{ResourceApiVersion: corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}
	b := &bootstrapv3.Bootstrap{
		Node: p.cfg.Node.Node(),
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			LdsConfig: ads, CdsConfig: ads,
			AdsConfig: &corev3.ApiConfigSource{ApiType: corev3.ApiConfigSource_DELTA_GRPC, TransportApiVersion: corev3.ApiVersion_V3,
				GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: xdsClusterName}}}}},
		},
	}
	if host, port, ok := splitHostPort(p.cfg.Discovery); ok {
		b.StaticResources = &bootstrapv3.Bootstrap_StaticResources{Clusters: []*clusterv3.Cluster{{
			Name:                 xdsClusterName,
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS},
			LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: xdsClusterName, Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddr(host, port)}}}},
			}}},
		}}}
	}
	if host, port, ok := splitHostPort(p.AdminAddr()); ok {
		b.Admin = &bootstrapv3.Admin{Address: socketAddr(host, port)}
	}
	return &adminv3.BootstrapConfigDump{Bootstrap: b}
}

func splitHostPort(addr string) (string, uint32, bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, false
	}
	n, err := strconv.ParseUint(port, 10, 16)
	return host, uint32(n), err == nil
}

func socketAddr(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

func clustersDump(st *xdsclient.State) *adminv3.ClustersConfigDump {
	d := &adminv3.ClustersConfigDump{}
	for _, r := range namedResources(st, xdsclient.ClusterType) {
		d.DynamicActiveClusters = append(d.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{VersionInfo: r.Version, Cluster: r.Raw})
	}
	return d
}

func listenersDump(st *xdsclient.State) *adminv3.ListenersConfigDump {
	d := &adminv3.ListenersConfigDump{}
	for name, r := range namedResources(st, xdsclient.ListenerType) {
		d.DynamicListeners = append(d.DynamicListeners, &adminv3.ListenersConfigDump_DynamicListener{Name: name,
			ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: r.Version, Listener: r.Raw}})
	}
	return d
}

func routesDump(st *xdsclient.State) *adminv3.RoutesConfigDump {
	d := &adminv3.RoutesConfigDump{}
	for _, r := range namedResources(st, xdsclient.RouteType) {
		d.DynamicRouteConfigs = append(d.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{VersionInfo: r.Version, RouteConfig: r.Raw})
	}
	return d
}

func endpointsDump(st *xdsclient.State) *adminv3.EndpointsConfigDump {
	d := &adminv3.EndpointsConfigDump{}
	for _, r := range namedResources(st, xdsclient.EndpointType) {
		d.DynamicEndpointConfigs = append(d.DynamicEndpointConfigs, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{VersionInfo: r.Version, EndpointConfig: r.Raw})
	}
	return d
}

// namedResources yields one type's resources in name order with their names.
func namedResources(st *xdsclient.State, typ string) func(func(string, *xdsclient.Resource) bool) {
	return func(yield func(string, *xdsclient.Resource) bool) {
		rs := st.Resources[typ]
		names := make([]string, 0, len(rs))
		for n := range rs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if !yield(n, rs[n]) {
				return
			}
		}
	}
}

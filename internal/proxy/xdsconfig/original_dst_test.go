package xdsconfig

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	origdstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Transparent capture: virtualInbound carries the original_dst listener
// filter (chains match SO_ORIGINAL_DST, the listener keeps the connection);
// virtualOutbound sets use_original_dst (hand-off to another listener).
func TestOriginalDstListeners(t *testing.T) {
	tp, err := anypb.New(&tcpproxyv3.TcpProxy{StatPrefix: "InboundPassthroughCluster",
		ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: "InboundPassthroughCluster"}})
	if err != nil {
		t.Fatal(err)
	}
	od, err := anypb.New(&origdstv3.OriginalDst{})
	if err != nil {
		t.Fatal(err)
	}
	chain := &listenerv3.FilterChain{Name: "virtualInbound", Filters: []*listenerv3.Filter{{
		Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tp}}}}
	addr := func(port uint32) *corev3.Address {
		return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "0.0.0.0", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
	}
	in, err := UnmarshalListener(&listenerv3.Listener{Name: "virtualInbound", Address: addr(15006),
		ListenerFilters: []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.original_dst",
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: od}}},
		FilterChains: []*listenerv3.FilterChain{chain}})
	if err != nil {
		t.Fatal(err)
	}
	if !in.OriginalDst || in.UseOriginalDst || !in.BindToPort {
		t.Errorf("virtualInbound: OriginalDst %v UseOriginalDst %v BindToPort %v", in.OriginalDst, in.UseOriginalDst, in.BindToPort)
	}
	out, err := UnmarshalListener(&listenerv3.Listener{Name: "virtualOutbound", Address: addr(15001),
		UseOriginalDst: wrapperspb.Bool(true), DefaultFilterChain: chain})
	if err != nil {
		t.Fatal(err)
	}
	if out.OriginalDst || !out.UseOriginalDst || out.ChainFor(443) == nil {
		t.Errorf("virtualOutbound: OriginalDst %v UseOriginalDst %v default chain %v", out.OriginalDst, out.UseOriginalDst, out.ChainFor(443))
	}
	// A wrong typed_config for the filter is rejected with its field path.
	_, err = UnmarshalListener(&listenerv3.Listener{Name: "bad", Address: addr(15006),
		ListenerFilters: []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.original_dst",
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: tp}}},
		FilterChains: []*listenerv3.FilterChain{chain}})
	if err == nil || !strings.Contains(err.Error(), "listener_filters[0].typed_config") {
		t.Errorf("bad original_dst config: %v", err)
	}
}

package xds

import (
	"fmt"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Names Istio gives to well-known clusters.
const (
	BlackHoleCluster   = "BlackHoleCluster"
	PassthroughCluster = "PassthroughCluster"
	// ExplicitProxyRoute names the explicit HTTP proxy's listener and route configuration.
	ExplicitProxyRoute = "outbound_http_proxy"
)

// Envoy extension names.
const (
	filterHCM      = "envoy.filters.network.http_connection_manager"
	filterTCPProxy = "envoy.filters.network.tcp_proxy"
	filterRouter   = "envoy.filters.http.router"
	filterFault    = "envoy.filters.http.fault"
	filterCORS     = "envoy.filters.http.cors"
	socketTLS      = "envoy.transport_sockets.tls"
	httpOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	// metadataIstio is the filter_metadata namespace of endpoint metadata.
	metadataIstio = "istio"
	// metadataConfig is the key under metadataIstio naming the Istio object
	// a cluster or route was made from (configPath), as istiod writes it and
	// istioctl proxy-config shows it.
	metadataConfig = "config"
)

// ClusterName returns Istio's cluster name "direction|port|subset|host".
func ClusterName(direction string, port uint32, subset, host string) string {
	return direction + "|" + strconv.FormatUint(uint64(port), 10) + "|" + subset + "|" + host
}

// OutboundCluster returns "outbound|port|subset|host".
func OutboundCluster(port uint32, subset, host string) string {
	return ClusterName("outbound", port, subset, host)
}

// InboundCluster returns "inbound|port||".
func InboundCluster(port uint32) string { return ClusterName("inbound", port, "", "") }

// sniFor returns Istio's SNI for ISTIO_MUTUAL: "outbound_.port_.subset_.host".
func sniFor(port uint32, subset, host string) string {
	return fmt.Sprintf("outbound_.%d_.%s_.%s", port, subset, host)
}

func portName(port uint32) string { return strconv.FormatUint(uint64(port), 10) }

// toAny wraps m deterministically so equal configs give equal bytes.
func toAny(m proto.Message) *anypb.Any {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("marshal %T: %v", m, err)) // only on programming errors
	}
	return &anypb.Any{TypeUrl: "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName()), Value: b}
}

// adsSource is a config source pointing at the ADS stream.
func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

func socketAddress(addr string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

// splitHostPort splits "host:port" leniently (IPv6 in brackets allowed).
func splitHostPort(s string) (string, uint32, bool) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", 0, false
	}
	p, err := strconv.ParseUint(s[i+1:], 10, 16)
	if err != nil {
		return "", 0, false
	}
	return strings.Trim(s[:i], "[]"), uint32(p), true
}

func wrapperspbFalse() *wrapperspb.BoolValue { return wrapperspb.Bool(false) }

// Istio object kinds as configPath names them.
const (
	kindDestinationRule = "destination-rule"
	kindVirtualService  = "virtual-service"
)

// configPath is istiod's name of the Istio networking object a resource came
// from: /apis/networking.istio.io/v1alpha3/namespaces/NS/KIND/NAME (istiod
// writes its internal version, v1alpha3, whatever version was applied).
func configPath(kind, namespace, name string) string {
	return "/apis/networking.istio.io/v1alpha3/namespaces/" + namespace + "/" + kind + "/" + name
}

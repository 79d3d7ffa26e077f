package xdsconfig_test

import (
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// TestNACKText: each unsupported field is rejected with a message naming the
// resource and the field.
func TestNACKText(t *testing.T) {
	cases := []struct {
		name string
		msg  proto.Message
		want string
	}{
		{"listener transparent", &listenerv3.Listener{Name: "l", Transparent: wrapperspb.Bool(true)},
			`listener "l": field transparent: unsupported`},
		{"listener without name", &listenerv3.Listener{}, `listener "": field name: empty`},
		{"listener filter", &listenerv3.Listener{Name: "l", Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1"}}},
			ListenerFilters: []*listenerv3.ListenerFilter{{Name: "x.proxy_protocol"}}},
			`listener "l": field listener_filters[0]: filter "x.proxy_protocol" unsupported`},
		{"route vhost rate limit without actions", &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "v",
			Domains: []string{"*"}, RateLimits: []*routev3.RateLimit{{}}}}},
			`route configuration "r": field virtual_hosts[0].rate_limits[0].actions: at least one action is required`},
		{"route vhost rate limit action unsupported", &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "v",
			Domains: []string{"*"}, RateLimits: []*routev3.RateLimit{{Actions: []*routev3.RateLimit_Action{{
				ActionSpecifier: &routev3.RateLimit_Action_MaskedRemoteAddress_{MaskedRemoteAddress: &routev3.RateLimit_Action_MaskedRemoteAddress{}}}}}}}}},
			`route configuration "r": field virtual_hosts[0].rate_limits[0].actions[0].masked_remote_address: rate limit action unsupported`},
		{"route match", &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "v",
			Domains: []string{"*"}, Routes: []*routev3.Route{{Match: &routev3.RouteMatch{
				PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, RuntimeFraction: &corev3.RuntimeFractionalPercent{}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}}}}}}}},
			`route configuration "r": field virtual_hosts[0].routes[0].match.runtime_fraction: unsupported`},
		{"route dynamic metadata without filter", &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "v",
			Domains: []string{"*"}, Routes: []*routev3.Route{{Match: &routev3.RouteMatch{
				PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, DynamicMetadata: []*matcherv3.MetadataMatcher{{}}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}}}}}}}},
			`route configuration "r": field virtual_hosts[0].routes[0].match.dynamic_metadata[0].filter: empty`},
		{"retry_on", &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "v",
			Domains: []string{"*"}, RetryPolicy: &routev3.RetryPolicy{RetryOn: "http3-post-connect-failure"}}}},
			`route configuration "r": field virtual_hosts[0].retry_policy.retry_on: condition "http3-post-connect-failure" unsupported`},
		{"per filter config", &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "v",
			Domains: []string{"*"}, TypedPerFilterConfig: map[string]*anypb.Any{"envoy.filters.http.lua": mustAny(t, &wrapperspb.StringValue{})}}}},
			`route configuration "r": field virtual_hosts[0].typed_per_filter_config[envoy.filters.http.lua]: per-filter config for "envoy.filters.http.lua" (type.googleapis.com/google.protobuf.StringValue) unsupported`},
		{"hash policy filter state", &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "v",
			Domains: []string{"*"}, Routes: []*routev3.Route{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"},
					HashPolicy: []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_FilterState_{
						FilterState: &routev3.RouteAction_HashPolicy_FilterState{Key: "k"}}}}}}}}}}},
			`route configuration "r": field virtual_hosts[0].routes[0].route.hash_policy[0].filter_state: unsupported`},
		{"retry budget percent", &clusterv3.Cluster{Name: "c", CircuitBreakers: &clusterv3.CircuitBreakers{
			Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{RetryBudget: &clusterv3.CircuitBreakers_Thresholds_RetryBudget{
				BudgetPercent: &typev3.Percent{Value: 150}}}}}},
			`cluster "c": field circuit_breakers.thresholds[0].retry_budget.budget_percent: 150 must be between 0 and 100`},
		{"cluster transport socket", &clusterv3.Cluster{Name: "c", TransportSocket: &corev3.TransportSocket{Name: "tls"}},
			`cluster "c": field transport_socket.typed_config: missing`},
		{"cluster sds credential", &clusterv3.Cluster{Name: "c", TransportSocket: &corev3.TransportSocket{Name: "tls",
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: anyOf(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
				TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "ROOTCA"}}}})}}},
			`cluster "c": field transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].name: "ROOTCA" is a trust bundle, not a certificate`},
		{"unknown cipher suite", &clusterv3.Cluster{Name: "c", TransportSocket: &corev3.TransportSocket{Name: "tls",
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: anyOf(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
				TlsParams: &tlsv3.TlsParameters{CipherSuites: []string{"ECDHE-RSA-AES128-GCM-SHA256", "NOT-A-CIPHER"}}}})}}},
			`cluster "c": field transport_socket.typed_config.common_tls_context.tls_params.cipher_suites: unknown cipher suite "NOT-A-CIPHER"`},
		{"only PSK cipher suites", &clusterv3.Cluster{Name: "c", TransportSocket: &corev3.TransportSocket{Name: "tls",
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: anyOf(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
				TlsParams: &tlsv3.TlsParameters{CipherSuites: []string{"PSK-AES128-CBC-SHA"}}}})}}},
			`cluster "c": field transport_socket.typed_config.common_tls_context.tls_params.cipher_suites: none of ["PSK-AES128-CBC-SHA"] can be offered (PSK suites are not implemented)`},
		{"listener chain match without inspector", &listenerv3.Listener{Name: "l", Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 1}}}},
			FilterChains: []*listenerv3.FilterChain{{FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "tls"},
				Filters: []*listenerv3.Filter{{Name: "tcp", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(&tcpproxyv3.TcpProxy{
					StatPrefix: "s", ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: "c"}})}}}}}},
			`listener "l": field filter_chains[0].filter_chain_match: transport_protocol tls and server_names need the envoy.filters.listener.tls_inspector listener filter`},
		{"application protocols without an inspector", &listenerv3.Listener{Name: "l", Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 1}}}},
			FilterChains: []*listenerv3.FilterChain{{FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "raw_buffer", ApplicationProtocols: []string{"http/1.1"}},
				Filters: []*listenerv3.Filter{{Name: "tcp", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(&tcpproxyv3.TcpProxy{
					StatPrefix: "s", ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: "c"}})}}}}}},
			`listener "l": field filter_chains[0].filter_chain_match: application_protocols need the envoy.filters.listener.tls_inspector or http_inspector listener filter`},
		{"listener filter disabled by any_match false", &listenerv3.Listener{Name: "l", Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 1}}}},
			ListenerFilters: []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.http_inspector",
				FilterDisabled: &listenerv3.ListenerFilterChainMatchPredicate{Rule: &listenerv3.ListenerFilterChainMatchPredicate_NotMatch{
					NotMatch: &listenerv3.ListenerFilterChainMatchPredicate{Rule: &listenerv3.ListenerFilterChainMatchPredicate_AnyMatch{}}}}}},
			FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: "tcp", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(&tcpproxyv3.TcpProxy{
				StatPrefix: "s", ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: "c"}})}}}}}},
			`listener "l": field listener_filters[0].filter_disabled.not_match.any_match: must be true`},
		{"listener filter disabled by a bad port range", &listenerv3.Listener{Name: "l", Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 1}}}},
			ListenerFilters: []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.tls_inspector",
				FilterDisabled: &listenerv3.ListenerFilterChainMatchPredicate{Rule: &listenerv3.ListenerFilterChainMatchPredicate_DestinationPortRange{
					DestinationPortRange: &typev3.Int32Range{Start: 90, End: 80}}}}},
			FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: "tcp", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(&tcpproxyv3.TcpProxy{
				StatPrefix: "s", ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: "c"}})}}}}}},
			`listener "l": field listener_filters[0].filter_disabled.destination_port_range: [90, 80) is not a port range`},
		{"secret without a type", &tlsv3.Secret{Name: "kubernetes://c"}, `secret "kubernetes://c": want tls_certificate or validation_context`},
		{"secret with a bad key pair", &tlsv3.Secret{Name: "kubernetes://c", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "not pem"}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "not pem"}}}}},
			`secret "kubernetes://c": field tls_certificate: tls: failed to find any PEM data in certificate input`},
		{"secret with an empty trust bundle", &tlsv3.Secret{Name: "kubernetes://c-cacert", Type: &tlsv3.Secret_ValidationContext{
			ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "x"}}}}},
			`secret "kubernetes://c-cacert": field validation_context.trusted_ca: no PEM certificate found`},
		{"listener server name", &listenerv3.Listener{Name: "l", Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 1}}}},
			ListenerFilters: []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.tls_inspector", ConfigType: &listenerv3.ListenerFilter_TypedConfig{
				TypedConfig: anyOf(&tlsinspectorv3.TlsInspector{})}}},
			FilterChains: []*listenerv3.FilterChain{{FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: []string{"a.*.com"}},
				Filters: []*listenerv3.Filter{{Name: "tcp", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(&tcpproxyv3.TcpProxy{
					StatPrefix: "s", ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: "c"}})}}}}}},
			`listener "l": field filter_chains[0].filter_chain_match.server_names[0]: invalid server name "a.*.com" (a name or *.suffix)`},
		{"cluster type other than the dynamic forward proxy", &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_ClusterType{
			ClusterType: &clusterv3.Cluster_CustomClusterType{Name: "envoy.clusters.redis"}}},
			`cluster "c": field cluster_type.name: "envoy.clusters.redis" unsupported (only envoy.clusters.dynamic_forward_proxy)`},
		{"cluster health checks", &clusterv3.Cluster{Name: "c", HealthChecks: []*corev3.HealthCheck{{}}},
			`cluster "c": field health_checks: unsupported`},
		{"outlier split errors", &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
			OutlierDetection: &clusterv3.OutlierDetection{SplitExternalLocalOriginErrors: true}},
			`cluster "c": field outlier_detection.split_external_local_origin_errors: unsupported`},
		{"panic threshold over 100", &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
			CommonLbConfig: &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: &typev3.Percent{Value: 150}}},
			`cluster "c": field common_lb_config.healthy_panic_threshold: 150 is not a percentage`},
		{"zone aware load balancing", &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
			CommonLbConfig: &clusterv3.Cluster_CommonLbConfig{LocalityConfigSpecifier: &clusterv3.Cluster_CommonLbConfig_ZoneAwareLbConfig_{
				ZoneAwareLbConfig: &clusterv3.Cluster_CommonLbConfig_ZoneAwareLbConfig{}}}},
			`cluster "c": field common_lb_config.zone_aware_lb_config: unsupported`},
		{"maglev table size not prime", &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
			LbPolicy: clusterv3.Cluster_MAGLEV, LbConfig: &clusterv3.Cluster_MaglevLbConfig_{MaglevLbConfig: &clusterv3.Cluster_MaglevLbConfig{TableSize: wrapperspb.UInt64(65536)}}},
			`cluster "c": field maglev_lb_config.table_size: 65536 must be a prime number up to 5000011`},
		{"ring bounds", &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
			LbPolicy: clusterv3.Cluster_RING_HASH, LbConfig: &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
				MinimumRingSize: wrapperspb.UInt64(4096), MaximumRingSize: wrapperspb.UInt64(1024)}}},
			`cluster "c": field ring_hash_lb_config: minimum_ring_size 4096 and maximum_ring_size 1024 must satisfy 0 < min <= max <= 8388608`},
		{"cluster max_stream_duration", &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
			TypedExtensionProtocolOptions: map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(t,
				&httpv3.HttpProtocolOptions{CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{MaxStreamDuration: durationpb.New(time.Second)}})}},
			`cluster "c": field typed_extension_protocol_options[envoy.extensions.upstreams.http.v3.HttpProtocolOptions].common_http_protocol_options.max_stream_duration: unsupported`},
		{"bind config port", &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
			LbPolicy: clusterv3.Cluster_CLUSTER_PROVIDED, UpstreamBindConfig: &corev3.BindConfig{SourceAddress: &corev3.SocketAddress{
				Address: "127.0.0.6", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 4000}}}},
			`cluster "c": field upstream_bind_config.source_address.port_value: must be 0 (a fixed source port would allow one connection at a time)`},
		{"bind config address", &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
			LbPolicy: clusterv3.Cluster_CLUSTER_PROVIDED, UpstreamBindConfig: &corev3.BindConfig{SourceAddress: &corev3.SocketAddress{Address: "localhost"}}},
			`cluster "c": field upstream_bind_config.source_address.address: "localhost" is not an IP address`},
		{"bind config freebind", &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
			LbPolicy: clusterv3.Cluster_CLUSTER_PROVIDED, UpstreamBindConfig: &corev3.BindConfig{Freebind: wrapperspb.Bool(true),
				SourceAddress: &corev3.SocketAddress{Address: "127.0.0.6"}}},
			`cluster "c": field upstream_bind_config.freebind: unsupported`},
		{"ext_authz google_grpc", hcmListener(&extauthzv3.ExtAuthz{TransportApiVersion: corev3.ApiVersion_V3,
			Services: &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_GoogleGrpc_{
				GoogleGrpc: &corev3.GrpcService_GoogleGrpc{TargetUri: "authz:9000"}}}}}),
			`listener "l": field filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.grpc_service.google_grpc: unsupported`},
		{"ext_authz v2 transport", hcmListener(&extauthzv3.ExtAuthz{Services: &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "c"}}}}}),
			`listener "l": field filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.transport_api_version: AUTO unsupported (only V3)`},
		{"ext_authz http service without timeout", hcmListener(&extauthzv3.ExtAuthz{TransportApiVersion: corev3.ApiVersion_V3,
			Services: &extauthzv3.ExtAuthz_HttpService{HttpService: &extauthzv3.HttpService{ServerUri: &corev3.HttpUri{Uri: "http://a",
				HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "c"}}}}}),
			`listener "l": field filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.http_service.server_uri.timeout: missing`},
		{"endpoint without port", &endpointv3.ClusterLoadAssignment{ClusterName: "e", Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "10.0.0.1"}}}}}}}}}},
			`cluster load assignment "e": field endpoints[0].lb_endpoints[0].endpoint.address.socket_address: invalid address "10.0.0.1" port 0`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := convertAny(tc.msg)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error = %v\nwant    %s", err, tc.want)
			}
		})
	}
}

// hcmListener is a listener whose one HCM runs filter, then the router.
func hcmListener(filter proto.Message) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{StatPrefix: "s",
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{Name: "r"}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "f", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(filter)}},
			{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(&routerv3.Router{})}}}}
	return &listenerv3.Listener{Name: "l", Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
		SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 1}}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: "hcm",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(hcm)}}}}}}
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestEndpointMetadata: the generator's istio metadata becomes the
// workload identity used for destination_* labels.
func TestEndpointMetadata(t *testing.T) {
	for _, r := range loadGolden(t) {
		c, ok := r.msg.(*endpointv3.ClusterLoadAssignment)
		if !ok || r.file != "sidecar-features.golden" {
			continue
		}
		out, err := xdsconfig.UnmarshalClusterLoadAssignment(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, ep := range out.Endpoints {
			if ep.Workload.Name == "reviews-v3" {
				w := ep.Workload
				if w.Namespace != "default" || w.App != "reviews" || w.Version != "v3" ||
					w.ServiceAccount != "bookinfo-reviews" {
					t.Fatalf("workload = %+v", w)
				}
				return
			}
		}
	}
	t.Fatal("no reviews-v3 endpoint in sidecar-features.golden")
}

// FuzzConvert feeds raw proto bytes to every converter: none may panic, and
// whatever converts must convert again the same way.
func FuzzConvert(f *testing.F) {
	for _, r := range loadGolden(f) {
		b, err := proto.Marshal(r.msg)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range []proto.Message{&listenerv3.Listener{}, &routev3.RouteConfiguration{},
			&clusterv3.Cluster{}, &endpointv3.ClusterLoadAssignment{}} {
			if proto.Unmarshal(data, m) != nil {
				continue
			}
			_, err1 := convertAny(m)
			_, err2 := convertAny(m)
			if (err1 == nil) != (err2 == nil) {
				t.Fatalf("conversion not deterministic: %v then %v", err1, err2)
			}
		}
	})
}

// anyOf packs m for table entries built outside a test function.
func anyOf(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

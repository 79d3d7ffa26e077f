package xds

import (
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// Mesh mTLS (PeerAuthentication on the inbound side, auto mTLS on the
// outbound side), as Istio generates it:
//
//   - STRICT: the inbound chain has a DownstreamTlsContext (SDS secrets
//     "default" and "ROOTCA", client certificate required, TLS 1.3) and
//     nothing else: plaintext clients fail the handshake.
//   - PERMISSIVE: a TLS chain matched by transport_protocol "tls" and Istio's
//     ALPN values, then the same filters without TLS for everything else;
//     the listener gets envoy.filters.listener.tls_inspector.
//   - DISABLE: the plaintext chain only.
//
// Outbound clusters without a DestinationRule tls setting get
// transport_socket_matches: ISTIO_MUTUAL for endpoints whose metadata
// envoy.transport_socket_match says tlsMode istio (they run a sidecar),
// plaintext for the rest. SANs are the SPIFFE IDs of the service's endpoints.
const (
	// SecretDefault is the SDS name of the workload certificate and key.
	SecretDefault = "default"
	// SecretRootCA is the SDS name of the trust bundle.
	SecretRootCA = "ROOTCA"
	// defaultTrustDomain is Istio's default mesh trust domain.
	defaultTrustDomain = "cluster.local"

	listenerTLSInspector = "envoy.filters.listener.tls_inspector"
	// metadataTransportSocketMatch is the endpoint metadata namespace that
	// transport_socket_matches look at.
	metadataTransportSocketMatch = "envoy.transport_socket_match"
	tlsModeKey                   = "tlsMode"
	tlsModeIstio                 = "istio"
	// Transport socket match names, Istio's.
	matchTLSModeIstio    = "tlsMode-istio"
	matchTLSModeDisabled = "tlsMode-disabled"
	socketRawBuffer      = "envoy.transport_sockets.raw_buffer"
)

// istioALPNs are the ALPN values of sidecar clients that a PERMISSIVE TLS
// chain matches (Istio's mtlsTCPWithMxcALPNs plus its HTTP variants).
var istioALPNs = []string{"istio", "istio-peer-exchange", "istio-http/1.0", "istio-http/1.1", "istio-h2"}

// inboundServerALPNs are what the inbound TLS context offers.
var inboundServerALPNs = []string{"istio-peer-exchange", "istio", "h2", "http/1.1"}

// upstreamALPNs are what ISTIO_MUTUAL clients offer (Istio's mtlsTCPWithMxcALPNs).
var upstreamALPNs = []string{"istio-peer-exchange", "istio"}

// spiffeID is the SPIFFE ID of a service account.
func spiffeID(ns, sa string) string {
	return "spiffe://" + defaultTrustDomain + "/ns/" + ns + "/sa/" + sa
}

// mtlsChains returns the inbound filter chains for one port: filters wrapped
// in the chains the port's PeerAuthentication mode asks for, and whether the
// listener needs tls_inspector.
func (g *gen) mtlsChains(port uint32, filters []*listenerv3.Filter) ([]*listenerv3.FilterChain, bool) {
	mode := g.snap.PeerAuthnFor(g.proxy).ModeFor(port)
	plain := &listenerv3.FilterChain{Filters: filters}
	switch mode {
	case model.MTLSDisable:
		return []*listenerv3.FilterChain{plain}, false
	case model.MTLSStrict:
		return []*listenerv3.FilterChain{{Filters: filters, TransportSocket: downstreamTLS()}}, false
	}
	tlsChain := &listenerv3.FilterChain{
		FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "tls", ApplicationProtocols: slices.Clone(istioALPNs)},
		Filters:          filters,
		TransportSocket:  downstreamTLS(),
	}
	plain.FilterChainMatch = &listenerv3.FilterChainMatch{TransportProtocol: "raw_buffer"}
	chains := []*listenerv3.FilterChain{tlsChain, plain}
	if isTCPFilters(filters) {
		// As Istio's PERMISSIVE TCP chains: TLS that does not offer Istio's
		// ALPN (a client's own TLS, HTTPS from outside the mesh, mTLS of a
		// client that names no ALPN) is not terminated but passed to the app
		// as it came. HTTP ports have no such chain (Istio refuses it there).
		chains = append(chains, &listenerv3.FilterChain{
			FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "tls"},
			Filters:          filters,
		})
	}
	return chains, true
}

// isTCPFilters reports a TCP filter chain (its last filter is tcp_proxy).
func isTCPFilters(filters []*listenerv3.Filter) bool {
	return len(filters) > 0 && filters[len(filters)-1].GetName() == filterTCPProxy
}

// tlsInspector is the listener filter PERMISSIVE chains need.
func tlsInspector() *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{Name: listenerTLSInspector,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: toAny(&tlsinspectorv3.TlsInspector{})}}
}

// downstreamTLS is the inbound mTLS transport socket.
func downstreamTLS() *corev3.TransportSocket {
	ctx := &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspbTrue(),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsParams:                      &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3},
			AlpnProtocols:                  slices.Clone(inboundServerALPNs),
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: SecretDefault, SdsConfig: adsSource()}},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext:         &tlsv3.CertificateValidationContext{},
					ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: SecretRootCA, SdsConfig: adsSource()},
				}},
		},
	}
	return &corev3.TransportSocket{Name: socketTLS, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: toAny(ctx)}}
}

// istioMutualSocket is the ISTIO_MUTUAL upstream socket: SDS "default" and
// "ROOTCA", TLS 1.3, SNI, ALPN, and the peer SPIFFE IDs accepted.
func istioMutualSocket(sni string, sans []string) *corev3.TransportSocket {
	var ms []*matcherv3.StringMatcher
	for _, s := range sans {
		ms = append(ms, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}})
	}
	ctx := &tlsv3.UpstreamTlsContext{
		Sni: sni,
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsParams:                      &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3},
			AlpnProtocols:                  slices.Clone(upstreamALPNs),
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: SecretDefault, SdsConfig: adsSource()}},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: typedSANs(ms)},
					ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: SecretRootCA, SdsConfig: adsSource()},
				}},
		},
	}
	return &corev3.TransportSocket{Name: socketTLS, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: toAny(ctx)}}
}

// autoMTLSMatches are the transport_socket_matches of auto mTLS.
func autoMTLSMatches(sni string, sans []string) []*clusterv3.Cluster_TransportSocketMatch {
	return []*clusterv3.Cluster_TransportSocketMatch{
		{
			Name:            matchTLSModeIstio,
			Match:           &structpb.Struct{Fields: map[string]*structpb.Value{tlsModeKey: structpb.NewStringValue(tlsModeIstio)}},
			TransportSocket: istioMutualSocket(sni, sans),
		},
		{
			Name:  matchTLSModeDisabled,
			Match: &structpb.Struct{},
			TransportSocket: &corev3.TransportSocket{Name: socketRawBuffer,
				ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: toAny(&rawbufferv3.RawBuffer{})}},
		},
	}
}

// serviceSANs are the SPIFFE IDs of the service accounts behind svc, sorted.
func serviceSANs(svc *registry.Service) []string {
	var out []string
	for _, e := range svc.Endpoints {
		if e.ServiceAccount == "" {
			continue
		}
		ns := e.Namespace
		if ns == "" {
			ns = svc.Namespace
		}
		out = append(out, spiffeID(ns, e.ServiceAccount))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func wrapperspbTrue() *wrapperspb.BoolValue { return wrapperspb.Bool(true) }

// tlsModeMetadata is the endpoint metadata auto mTLS matches on.
func tlsModeMetadata() *structpb.Struct {
	return &structpb.Struct{Fields: map[string]*structpb.Value{tlsModeKey: structpb.NewStringValue(tlsModeIstio)}}
}

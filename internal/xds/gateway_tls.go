package xds

import (
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/config/validation"
	"github.com/bowline-mesh/bowline/internal/model"
)

// SDS names of gateway credentials, Istio's: "kubernetes://NAME" is the
// certificate and key of Secret NAME in the gateway's namespace,
// "kubernetes://NAME-cacert" its trust bundle; a credentialName already in
// the "kubernetes-gateway://NS/NAME" form keeps that name.
const sdsKubernetesPrefix = "kubernetes://"

// gatewayALPNs are what an HTTPS gateway server accepts (Istio's).
var gatewayALPNs = []string{"h2", "http/1.1"}

// credentialSDSName is the SDS name of a credentialName's certificate.
func credentialSDSName(credentialName string) string {
	if strings.HasPrefix(credentialName, model.GatewayCredentialPrefix) {
		return credentialName
	}
	return sdsKubernetesPrefix + credentialName
}

// gatewaySecret adds the SDS secret of credentialName's certificate (ca
// false) or trust bundle (ca true) to the proxy's resources and returns its
// name; ok is false when the Secret is missing or lacks the keys (the
// server is then not served: a handshake could only fail).
func (g *gen) gatewaySecret(credentialName string, ca bool) (string, bool) {
	name := credentialSDSName(credentialName)
	if ca {
		name += model.CASuffix
	}
	if _, done := g.secrets[name]; done {
		return name, true
	}
	ns, secretName := model.CredentialRef(credentialName, g.proxy.Namespace)
	var sec *tlsv3.Secret
	if ca {
		pem, err := g.snap.SecretCA(ns, secretName)
		if err != nil {
			return "", false
		}
		sec = &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: pem}}}}}
	} else {
		cert, key, err := g.snap.SecretCertificate(ns, secretName)
		if err != nil {
			return "", false
		}
		sec = &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: cert}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: key}}}}}
	}
	g.secrets[name] = sec
	return name, true
}

// serverTLSContext is the DownstreamTlsContext of a TLS-terminating gateway
// server (SIMPLE, MUTUAL, OPTIONAL_MUTUAL, ISTIO_MUTUAL): the certificate
// over SDS (credentialName) or from files (serverCertificate/privateKey),
// client verification for the mutual modes, the TLS versions and cipher
// suites. ok is false when a credential cannot be resolved.
func (g *gen) serverTLSContext(t *networking.ServerTLSSettings, alpn []string) (*tlsv3.DownstreamTlsContext, bool) {
	common := &tlsv3.CommonTlsContext{AlpnProtocols: alpn, TlsParams: serverTLSParams(t)}
	ctx := &tlsv3.DownstreamTlsContext{CommonTlsContext: common}
	mode := t.GetMode()
	if mode == networking.ServerTLSSettings_ISTIO_MUTUAL {
		ctx.RequireClientCertificate = wrapperspbTrue()
		common.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{{Name: SecretDefault, SdsConfig: adsSource()}}
		common.ValidationContextType = combinedValidation(SecretRootCA, t.GetSubjectAltNames())
		return ctx, true
	}
	mutual := mode == networking.ServerTLSSettings_MUTUAL || mode == networking.ServerTLSSettings_OPTIONAL_MUTUAL
	if cn := t.GetCredentialName(); cn != "" {
		cert, ok := g.gatewaySecret(cn, false)
		if !ok {
			return nil, false
		}
		common.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{{Name: cert, SdsConfig: adsSource()}}
		if mutual {
			ca, ok := g.gatewaySecret(cn, true)
			if !ok {
				return nil, false
			}
			common.ValidationContextType = combinedValidation(ca, t.GetSubjectAltNames())
		}
	} else {
		common.TlsCertificates = []*tlsv3.TlsCertificate{{CertificateChain: fileSource(t.GetServerCertificate()),
			PrivateKey: fileSource(t.GetPrivateKey())}}
		if mutual {
			common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: fileSource(t.GetCaCertificates()), MatchTypedSubjectAltNames: sanMatchers(t.GetSubjectAltNames())}}
		}
	}
	if mode == networking.ServerTLSSettings_MUTUAL {
		ctx.RequireClientCertificate = wrapperspbTrue()
	}
	return ctx, true
}

// combinedValidation verifies peers against SDS secret roots and, when
// given, the subject alt names.
func combinedValidation(roots string, sans []string) *tlsv3.CommonTlsContext_CombinedValidationContext {
	return &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
		DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sanMatchers(sans)},
		ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: roots, SdsConfig: adsSource()},
	}}
}

func sanMatchers(sans []string) []*tlsv3.SubjectAltNameMatcher {
	var ms []*matcherv3.StringMatcher
	for _, s := range sans {
		ms = append(ms, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}})
	}
	return typedSANs(ms)
}

// serverTLSParams maps minProtocolVersion, maxProtocolVersion and
// cipherSuites; nil when none is set. Unknown cipher suites were warned
// about by validation and are left out, as istiod leaves them out.
func serverTLSParams(t *networking.ServerTLSSettings) *tlsv3.TlsParameters {
	if t.GetMinProtocolVersion() == networking.ServerTLSSettings_TLS_AUTO && t.GetMaxProtocolVersion() == networking.ServerTLSSettings_TLS_AUTO &&
		len(t.GetCipherSuites()) == 0 {
		return nil
	}
	return &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsProtocol(t.GetMinProtocolVersion()),
		TlsMaximumProtocolVersion: tlsProtocol(t.GetMaxProtocolVersion()), CipherSuites: validation.FilterCipherSuites(t.GetCipherSuites())}
}

func tlsProtocol(v networking.ServerTLSSettings_TLSProtocol) tlsv3.TlsParameters_TlsProtocol {
	switch v {
	case networking.ServerTLSSettings_TLSV1_0:
		return tlsv3.TlsParameters_TLSv1_0
	case networking.ServerTLSSettings_TLSV1_1:
		return tlsv3.TlsParameters_TLSv1_1
	case networking.ServerTLSSettings_TLSV1_2:
		return tlsv3.TlsParameters_TLSv1_2
	case networking.ServerTLSSettings_TLSV1_3:
		return tlsv3.TlsParameters_TLSv1_3
	}
	return tlsv3.TlsParameters_TLS_AUTO
}

// downstreamSocket wraps a DownstreamTlsContext as a transport socket.
func downstreamSocket(ctx *tlsv3.DownstreamTlsContext) *corev3.TransportSocket {
	return &corev3.TransportSocket{Name: socketTLS, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: toAny(ctx)}}
}

// serverNames are the SNI names a gateway server's filter chain matches:
// its hosts without the namespace part, none (any SNI) when one is "*".
func serverNames(hosts []string) []string {
	var out []string
	for _, h := range hosts {
		_, host, ok := strings.Cut(h, "/")
		if !ok {
			host = h
		}
		if host == "*" {
			return nil
		}
		out = append(out, strings.ToLower(host))
	}
	return out
}

// gatewayServerChains returns the filter chains of one server on a port
// that also carries TLS: an HTTPS server terminating TLS into RDS
// "https.<port>.<port name>.<gateway>.<namespace>" (Istio's name), a TLS
// server passing through by VirtualService tls routes (PASSTHROUGH), or
// terminating TLS into tcp routes, a TCP server by tcp routes. A server
// whose credential cannot be resolved, and a plain HTTP server, give none.
func (g *gen) gatewayServerChains(port, listen uint32, gs gatewayServer) []*listenerv3.FilterChain {
	s := gs.server
	mode := s.GetTls().GetMode()
	passthrough := mode == networking.ServerTLSSettings_PASSTHROUGH || mode == networking.ServerTLSSettings_AUTO_PASSTHROUGH
	switch strings.ToUpper(s.GetPort().GetProtocol()) {
	case "HTTPS":
		if passthrough {
			return g.passthroughChains(port, gs)
		}
		ctx, ok := g.serverTLSContext(s.GetTls(), gatewayALPNs)
		if !ok {
			return nil
		}
		rc := g.gatewayRoutes(httpsRouteName(port, gs), port, []gatewayServer{gs})
		g.routes[rc.Name] = rc
		return []*listenerv3.FilterChain{{
			FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: serverNames(s.GetHosts()), TransportProtocol: "tls"},
			Filters:          []*listenerv3.Filter{hcmFilter(g.gatewayHCM(port, listen, rc.Name))},
			TransportSocket:  downstreamSocket(ctx),
		}}
	case "TLS":
		if passthrough {
			return g.passthroughChains(port, gs)
		}
		ctx, ok := g.serverTLSContext(s.GetTls(), nil)
		if !ok {
			return nil
		}
		tp := g.gatewayTCPProxy(port, gs)
		if tp == nil {
			return nil
		}
		return []*listenerv3.FilterChain{{
			FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: serverNames(s.GetHosts()), TransportProtocol: "tls"},
			Filters:          g.tcpFilters(tp, true),
			TransportSocket:  downstreamSocket(ctx),
		}}
	case "TCP", "MONGO", "REDIS", "MYSQL":
		tp := g.gatewayTCPProxy(port, gs)
		if tp == nil {
			return nil
		}
		return []*listenerv3.FilterChain{{Filters: g.tcpFilters(tp, true)}}
	}
	return nil
}

// httpsRouteName is Istio's RDS name of an HTTPS gateway server.
func httpsRouteName(port uint32, gs gatewayServer) string {
	return "https." + portName(port) + "." + gs.server.GetPort().GetName() + "." + gs.gw.Name + "." + gs.gw.Namespace
}

// boundVirtualServices returns the VirtualServices bound to gs's Gateway
// with a host one of the server's hosts admits.
func (g *gen) boundVirtualServices(gs gatewayServer) []*model.VirtualService {
	var out []*model.VirtualService
	for _, vs := range g.snap.VirtualServicesFor(g.proxy, gs.gw.Ref()) {
		if serverAdmits(gs, vs, vs.Hosts...) {
			out = append(out, vs)
		}
	}
	return out
}

// serverAdmits reports whether one of hosts falls under one of the
// server's hosts visible to vs's namespace.
func serverAdmits(gs gatewayServer, vs *model.VirtualService, hosts ...string) bool {
	for _, sh := range gs.server.GetHosts() {
		host, ok := gatewayServerHost(sh, gs.gw.Namespace, vs.Namespace)
		if !ok {
			continue
		}
		for _, h := range hosts {
			if _, ok := model.HostIntersection(host, strings.ToLower(h)); ok {
				return true
			}
		}
	}
	return false
}

// l4Applies reports whether an L4 match (tcp or tls route) applies on this
// gateway port: its port and gateways, when given, name it.
func l4Applies(port uint32, gateway string, matchPort uint32, gateways []string) bool {
	if matchPort != 0 && matchPort != port {
		return false
	}
	return len(gateways) == 0 || slices.Contains(gateways, gateway)
}

// passthroughChains are a PASSTHROUGH server's chains: one per tls route
// match of the bound VirtualServices, matching its sniHosts and proxying
// the still-encrypted connection to the route's destinations.
func (g *gen) passthroughChains(port uint32, gs gatewayServer) []*listenerv3.FilterChain {
	sc := routeScope{port: port, gateway: gs.gw.Ref()}
	var out []*listenerv3.FilterChain
	for _, vs := range g.boundVirtualServices(gs) {
		for _, r := range vs.TLS {
			for _, m := range r.GetMatch() {
				if !l4Applies(port, gs.gw.Ref(), m.GetPort(), m.GetGateways()) || !serverAdmits(gs, vs, m.GetSniHosts()...) {
					continue
				}
				tp := &tcpproxyv3.TcpProxy{StatPrefix: "outbound_0.0.0.0_" + portName(port)}
				if !g.tcpRouteTarget(tp, r.GetRoute(), sc) {
					continue
				}
				out = append(out, &listenerv3.FilterChain{
					FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: serverNames(m.GetSniHosts()), TransportProtocol: "tls"},
					Filters:          g.tcpFilters(tp, true),
				})
			}
		}
	}
	return out
}

// gatewayTCPProxy is the tcp_proxy of a TCP or TLS-terminating server: the
// first tcp route of the bound VirtualServices that applies on the port;
// nil when none does.
func (g *gen) gatewayTCPProxy(port uint32, gs gatewayServer) *tcpproxyv3.TcpProxy {
	sc := routeScope{port: port, gateway: gs.gw.Ref()}
	for _, vs := range g.boundVirtualServices(gs) {
	routes:
		for _, r := range vs.TCP {
			for _, m := range r.GetMatch() {
				if !l4Applies(port, gs.gw.Ref(), m.GetPort(), m.GetGateways()) {
					continue routes
				}
			}
			tp := &tcpproxyv3.TcpProxy{StatPrefix: "outbound_0.0.0.0_" + portName(port)}
			if g.tcpRouteTarget(tp, r.GetRoute(), sc) {
				return tp
			}
		}
	}
	return nil
}

// tcpRouteTarget points tp at a tcp or tls route's destinations: one
// cluster, or weighted clusters (weight 0 destinations dropped). It reports
// false when the route has no destination.
func (g *gen) tcpRouteTarget(tp *tcpproxyv3.TcpProxy, ds []*networking.RouteDestination, sc routeScope) bool {
	switch {
	case len(ds) == 1:
		tp.ClusterSpecifier = &tcpproxyv3.TcpProxy_Cluster{Cluster: g.destinationCluster(ds[0].GetDestination(), sc)}
		return true
	case len(ds) > 1:
		wc := &tcpproxyv3.TcpProxy_WeightedCluster{}
		for _, d := range ds {
			if d.GetWeight() > 0 {
				wc.Clusters = append(wc.Clusters, &tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight{
					Name: g.destinationCluster(d.GetDestination(), sc), Weight: uint32(d.GetWeight())})
			}
		}
		if len(wc.Clusters) == 0 {
			return false
		}
		tp.ClusterSpecifier = &tcpproxyv3.TcpProxy_WeightedClusters{WeightedClusters: wc}
		return true
	}
	return false
}

func hcmFilter(hcm *hcmv3.HttpConnectionManager) *listenerv3.Filter {
	return &listenerv3.Filter{Name: filterHCM, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(hcm)}}
}

func tcpProxyFilter(tp *tcpproxyv3.TcpProxy) *listenerv3.Filter {
	return &listenerv3.Filter{Name: filterTCPProxy, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(tp)}}
}

// chainMatchKey identifies a filter chain match for duplicate detection.
func chainMatchKey(m *listenerv3.FilterChainMatch) string {
	names := slices.Clone(m.GetServerNames())
	slices.Sort(names)
	return m.GetTransportProtocol() + "|" + strings.Join(names, ",")
}

// gatewayClusterSecrets adds the SDS secrets a gateway's clusters name: a
// DestinationRule tls credentialName (TLS origination at an egress gateway,
// Istio's pattern) is served from the Secret in the gateway's namespace,
// as the gateway's own credentials are. A missing Secret leaves the name
// unresolved: handshakes to that cluster fail (UF) until it appears.
func (g *gen) gatewayClusterSecrets() {
	for _, c := range g.clusters {
		ts := c.GetTransportSocket()
		if ts == nil {
			continue
		}
		u := &tlsv3.UpstreamTlsContext{}
		if ts.GetTypedConfig().UnmarshalTo(u) != nil {
			continue
		}
		common := u.GetCommonTlsContext()
		for _, ref := range common.GetTlsCertificateSdsSecretConfigs() {
			if cn, ok := credentialOfSDSName(ref.GetName()); ok {
				g.gatewaySecret(cn, false)
			}
		}
		if v := common.GetCombinedValidationContext().GetValidationContextSdsSecretConfig(); v != nil {
			if cn, ok := credentialOfSDSName(strings.TrimSuffix(v.GetName(), model.CASuffix)); ok {
				g.gatewaySecret(cn, true)
			}
		}
	}
}

// credentialOfSDSName is credentialSDSName reversed; ok is false for the
// workload identity's names (default, ROOTCA).
func credentialOfSDSName(name string) (string, bool) {
	if cn, ok := strings.CutPrefix(name, sdsKubernetesPrefix); ok {
		return cn, true
	}
	if strings.HasPrefix(name, model.GatewayCredentialPrefix) {
		return name, true
	}
	return "", false
}

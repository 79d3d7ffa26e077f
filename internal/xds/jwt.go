package xds

import (
	"net"
	"net/url"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	security "istio.io/api/security/v1beta1"

	"github.com/bowline-mesh/bowline/internal/model"
)

// defaultJWKSTimeout is Istio's JWTRule.timeout default.
const defaultJWKSTimeout = 5 * time.Second

// spaceDelimitedClaims are always split on spaces in the payload metadata
// so that request.auth.claims[scope] matches one scope (Istio's default).
var defaultSpaceDelimitedClaims = []string{"scope", "permission"}

// jwtFilter returns the envoy.filters.http.jwt_authn filter for the
// RequestAuthentications applying to the proxy, or nil when none does.
//
// Istio's requirement: every jwtRule becomes provider "origins-<i>"; with one
// provider the requirement is requires_any{provider, allow_missing}; with
// several it is requires_any{P0, P1, ..., requires_all{any{P0, allow_missing},
// any{P1, allow_missing}, ...}}. So a request without a token passes (the
// AuthorizationPolicy decides), and any token present must be valid for some
// provider (else 401). The payload lands in dynamic metadata
// envoy.filters.http.jwt_authn/payload where RBAC reads claims.
func (g *gen) jwtFilter() *hcmv3.HttpFilter {
	var rules []*security.JWTRule
	for _, ra := range g.snap.RequestAuthenticationsFor(g.proxy) {
		rules = append(rules, ra.Spec.GetJwtRules()...)
	}
	if len(rules) == 0 {
		return nil
	}
	cfg := &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{}, BypassCorsPreflight: true}
	var inner, outer []*jwtv3.JwtRequirement
	for i, r := range rules {
		name := "origins-" + strconv.Itoa(i)
		cfg.Providers[name] = g.jwtProvider(r)
		byName := &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: name}}
		inner = append(inner, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: &jwtv3.JwtRequirementOrList{
			Requirements: []*jwtv3.JwtRequirement{byName, {RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}}}}}})
		outer = append(outer, byName)
	}
	req := inner[0]
	if len(inner) > 1 {
		outer = append(outer, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAll{
			RequiresAll: &jwtv3.JwtRequirementAndList{Requirements: inner}}})
		req = &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: outer}}}
	}
	cfg.Rules = []*jwtv3.RequirementRule{{
		Match:           &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		RequirementType: &jwtv3.RequirementRule_Requires{Requires: req},
	}}
	return &hcmv3.HttpFilter{Name: filterJWTAuthn, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(cfg)}}
}

// jwtProvider maps one JWTRule field for field.
func (g *gen) jwtProvider(r *security.JWTRule) *jwtv3.JwtProvider {
	p := &jwtv3.JwtProvider{
		Issuer:               r.GetIssuer(),
		Audiences:            r.GetAudiences(),
		Forward:              r.GetForwardOriginalToken(),
		ForwardPayloadHeader: r.GetOutputPayloadToHeader(),
		FromParams:           r.GetFromParams(),
		FromCookies:          r.GetFromCookies(),
		PayloadInMetadata:    jwtPayloadKey,
		// Gateways route on verified claims (routes.go, claimMatcher): the
		// route is chosen again once the payload is in the metadata, as
		// Istio sets it for every proxy but sidecars.
		ClearRouteCache: g.proxy.Type != model.SidecarProxy,
		NormalizePayloadInMetadata: &jwtv3.JwtProvider_NormalizePayload{
			SpaceDelimitedClaims: append(append([]string(nil), defaultSpaceDelimitedClaims...), r.GetSpaceDelimitedClaims()...)},
	}
	for _, h := range r.GetFromHeaders() {
		p.FromHeaders = append(p.FromHeaders, &jwtv3.JwtHeader{Name: h.GetName(), ValuePrefix: h.GetPrefix()})
	}
	for _, c := range r.GetOutputClaimToHeaders() {
		p.ClaimToHeaders = append(p.ClaimToHeaders, &jwtv3.JwtClaimToHeader{HeaderName: c.GetHeader(), ClaimName: c.GetClaim()})
	}
	switch {
	case r.GetJwks() != "":
		p.JwksSourceSpecifier = &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
			Specifier: &corev3.DataSource_InlineString{InlineString: r.GetJwks()}}}
	case r.GetJwksUri() != "":
		timeout := defaultJWKSTimeout
		if t := r.GetTimeout(); t != nil {
			timeout = t.AsDuration()
		}
		p.JwksSourceSpecifier = &jwtv3.JwtProvider_RemoteJwks{RemoteJwks: &jwtv3.RemoteJwks{HttpUri: &corev3.HttpUri{
			Uri:              r.GetJwksUri(),
			HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: g.jwksCluster(r.GetJwksUri())},
			Timeout:          durationpb.New(timeout),
		}}}
	default:
		// Istio resolves the issuer's OpenID discovery document in istiod;
		// Bowline does not fetch anything in the control plane, so a rule
		// without jwks/jwksUri gets an empty key set: every token of this
		// issuer is rejected (fail closed) and a missing token still passes.
		p.JwksSourceSpecifier = &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
			Specifier: &corev3.DataSource_InlineString{InlineString: `{"keys":[]}`}}}
	}
	return p
}

// jwksCluster returns the cluster through which the proxy fetches jwksURI:
// the mesh cluster outbound|PORT||HOST when HOST is a service the proxy
// sees, else a LOGICAL_DNS cluster of that name added here (TLS with the
// system roots for https).
func (g *gen) jwksCluster(jwksURI string) string {
	u, err := url.Parse(jwksURI)
	if err != nil || u.Hostname() == "" {
		return BlackHoleCluster
	}
	host := u.Hostname()
	port := uint32(80)
	if u.Scheme == "https" {
		port = 443
	}
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return BlackHoleCluster
		}
		port = uint32(n)
	}
	name := OutboundCluster(port, "", host)
	if g.snap.LookupService(g.proxy, host) != nil {
		return name
	}
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS},
		DnsLookupFamily:      clusterv3.Cluster_V4_ONLY,
		ConnectTimeout:       durationpb.New(defaultConnectTimeout),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
				Endpoint: &endpointv3.Endpoint{Address: socketAddress(host, port)}}}},
		}}},
	}
	if ip := net.ParseIP(host); ip != nil {
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
		c.DnsLookupFamily = clusterv3.Cluster_AUTO // unused by STATIC; the default
	}
	if u.Scheme == "https" {
		tc := &tlsv3.UpstreamTlsContext{Sni: host, CommonTlsContext: &tlsv3.CommonTlsContext{
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				SystemRootCerts: &tlsv3.CertificateValidationContext_SystemRootCerts{}}}}}
		c.TransportSocket = &corev3.TransportSocket{Name: socketTLS, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: toAny(tc)}}
	}
	g.clusters[name] = c
	return name
}

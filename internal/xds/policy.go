package xds

import (
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// policy is a DestinationRule traffic policy flattened for one port and
// subset: each section comes from the most specific place that sets it
// (subset port level > subset > top port level > top), as Istio merges them.
type policy struct {
	lb      *networking.LoadBalancerSettings
	pool    *networking.ConnectionPoolSettings
	outlier *networking.OutlierDetection
	tls     *networking.ClientTLSSettings
	// retryBudget is the subset's, else the top level's (port-level
	// settings have none).
	retryBudget *networking.TrafficPolicy_RetryBudget
	explicit    bool // some DestinationRule applies
}

func effectivePolicy(port uint32, top, subset *networking.TrafficPolicy) policy {
	var p policy
	apply := func(tp *networking.TrafficPolicy) {
		if tp == nil {
			return
		}
		p.explicit = true
		p.override(tp)
		if rb := tp.GetRetryBudget(); rb != nil {
			p.retryBudget = rb
		}
		for _, pl := range tp.GetPortLevelSettings() {
			if pl.GetPort().GetNumber() == port {
				p.override(pl)
			}
		}
	}
	apply(top)
	apply(subset)
	return p
}

// policySettings is what a TrafficPolicy and its port-level settings both set.
type policySettings interface {
	GetLoadBalancer() *networking.LoadBalancerSettings
	GetConnectionPool() *networking.ConnectionPoolSettings
	GetOutlierDetection() *networking.OutlierDetection
	GetTls() *networking.ClientTLSSettings
}

var (
	_ policySettings = (*networking.TrafficPolicy)(nil)
	_ policySettings = (*networking.TrafficPolicy_PortTrafficPolicy)(nil)
)

// override replaces each section of p that s sets.
func (p *policy) override(s policySettings) {
	if s.GetLoadBalancer() != nil {
		p.lb = s.GetLoadBalancer()
	}
	if s.GetConnectionPool() != nil {
		p.pool = s.GetConnectionPool()
	}
	if s.GetOutlierDetection() != nil {
		p.outlier = s.GetOutlierDetection()
	}
	if s.GetTls() != nil {
		p.tls = s.GetTls()
	}
}

func (g *gen) applyPolicy(c *clusterv3.Cluster, svc *registry.Service, port registry.Port, subset string, p policy) {
	g.applyLB(c, p.lb)
	applyRetryBudget(c.CircuitBreakers.Thresholds[0], p.retryBudget)
	opts := &httpv3.HttpProtocolOptions{}
	needOpts := false
	if pool := p.pool; pool != nil {
		th := c.CircuitBreakers.Thresholds[0]
		if tcp := pool.GetTcp(); tcp != nil {
			if tcp.GetMaxConnections() > 0 {
				th.MaxConnections = u32(uint32(tcp.GetMaxConnections()))
			}
			if tcp.GetConnectTimeout() != nil {
				c.ConnectTimeout = tcp.GetConnectTimeout()
			}
			if tcp.GetMaxConnectionDuration() != nil {
				opts.CommonHttpProtocolOptions = commonOpts(opts)
				opts.CommonHttpProtocolOptions.MaxConnectionDuration = tcp.GetMaxConnectionDuration()
				needOpts = true
			}
		}
		if h := pool.GetHttp(); h != nil {
			if h.GetHttp1MaxPendingRequests() > 0 {
				th.MaxPendingRequests = u32(uint32(h.GetHttp1MaxPendingRequests()))
			}
			if h.GetHttp2MaxRequests() > 0 {
				th.MaxRequests = u32(uint32(h.GetHttp2MaxRequests()))
			}
			if h.GetMaxRetries() > 0 {
				th.MaxRetries = u32(uint32(h.GetMaxRetries()))
			}
			if h.GetMaxRequestsPerConnection() > 0 {
				opts.CommonHttpProtocolOptions = commonOpts(opts)
				opts.CommonHttpProtocolOptions.MaxRequestsPerConnection = u32(uint32(h.GetMaxRequestsPerConnection()))
				needOpts = true
			}
			if h.GetIdleTimeout() != nil {
				opts.CommonHttpProtocolOptions = commonOpts(opts)
				opts.CommonHttpProtocolOptions.IdleTimeout = h.GetIdleTimeout()
				needOpts = true
			}
		}
	}
	if port.IsHTTP() && !g.grpc {
		h2 := port.Protocol == "HTTP2" || port.Protocol == "GRPC" ||
			p.pool.GetHttp().GetH2UpgradePolicy() == networking.ConnectionPoolSettings_HTTPSettings_UPGRADE
		if h2 {
			h2o := &corev3.Http2ProtocolOptions{}
			if n := p.pool.GetHttp().GetMaxConcurrentStreams(); n > 0 {
				h2o.MaxConcurrentStreams = u32(uint32(n))
			}
			opts.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: h2o}}}
			needOpts = true
		} else if needOpts {
			opts.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}}}}
		}
	}
	if needOpts && !g.grpc {
		if opts.UpstreamProtocolOptions == nil {
			opts.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}}}}
		}
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpOptionsKey: toAny(opts)}
	}
	// The panic threshold as istiod sets it: outlierDetection's
	// minHealthPercent (0 unless given), else 0, because the service's
	// unhealthy endpoints are sent (PILOT_AUTO_SEND_UNHEALTHY_ENDPOINTS) and
	// Envoy's default 50% would route to them. (With minHealthPercent > 0
	// they are left out of the load assignment: sendsUnhealthy.)
	if c.CommonLbConfig == nil {
		c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{}
	}
	c.CommonLbConfig.HealthyPanicThreshold = &typev3.Percent{Value: 0}
	if od := p.outlier; od != nil {
		c.OutlierDetection = outlierDetection(od)
		c.CommonLbConfig.HealthyPanicThreshold = &typev3.Percent{Value: float64(od.GetMinHealthPercent())}
	}
	if !g.grpc {
		g.applyUpstreamTLS(c, svc, port, subset, p.tls)
	}
}

// applyRetryBudget sets a DestinationRule retryBudget as Istio maps it onto
// the circuit breaker: budget_percent (Istio's default 20%),
// min_retry_concurrency (default 3; 0 means the default) and
// budget_interval as given. With a budget, Envoy bounds concurrent retries by
// it instead of max_retries.
func applyRetryBudget(th *clusterv3.CircuitBreakers_Thresholds, rb *networking.TrafficPolicy_RetryBudget) {
	if rb == nil {
		return
	}
	pct := 20.0
	if rb.GetPercent() != nil {
		pct = rb.GetPercent().GetValue()
	}
	minConc := uint32(3)
	if rb.GetMinRetryConcurrency() > 0 {
		minConc = rb.GetMinRetryConcurrency()
	}
	th.RetryBudget = &clusterv3.CircuitBreakers_Thresholds_RetryBudget{
		BudgetPercent:       &typev3.Percent{Value: pct},
		MinRetryConcurrency: u32(minConc),
		BudgetInterval:      rb.GetBudgetInterval(),
	}
}

// applyUpstreamTLS sets a cluster's upstream TLS as Istio does: a
// DestinationRule tls setting wins (DISABLE: plaintext); without one, auto
// mTLS sends ISTIO_MUTUAL to endpoints that have a sidecar (metadata tlsMode
// istio) and plaintext to the others, unless the service is MESH_EXTERNAL or
// its namespace's PeerAuthentication is DISABLE. Without a CA
// (model.Snapshot.NoCA) neither auto mTLS nor ISTIO_MUTUAL is generated.
func (g *gen) applyUpstreamTLS(c *clusterv3.Cluster, svc *registry.Service, port registry.Port, subset string, t *networking.ClientTLSSettings) {
	sni := sniFor(port.Number, subset, svc.Hostname)
	if t != nil {
		if t.GetMode() == networking.ClientTLSSettings_ISTIO_MUTUAL && g.snap.NoCA() {
			return // no workload certificates: plaintext (a problem of the snapshot)
		}
		if t.GetCredentialName() != "" && g.proxy.Type != model.Router &&
			(t.GetMode() == networking.ClientTLSSettings_SIMPLE || t.GetMode() == networking.ClientTLSSettings_MUTUAL) {
			// As istiod: a credentialName is for gateways; sidecars get no
			// TLS from such a rule (they could not read the Secret, and
			// waiting for it would hold up their start).
			return
		}
		c.TransportSocket = tlsSocket(t, sni, serviceSANs(svc))
		return
	}
	if svc.MeshExternal || g.snap.NamespaceMTLSMode(svc.Namespace) == model.MTLSDisable {
		return
	}
	c.TransportSocketMatches = autoMTLSMatches(sni, serviceSANs(svc))
}

func commonOpts(o *httpv3.HttpProtocolOptions) *corev3.HttpProtocolOptions {
	if o.CommonHttpProtocolOptions == nil {
		return &corev3.HttpProtocolOptions{}
	}
	return o.CommonHttpProtocolOptions
}

func (g *gen) applyLB(c *clusterv3.Cluster, lb *networking.LoadBalancerSettings) {
	if lb == nil {
		return
	}
	switch lb.GetSimple() {
	case networking.LoadBalancerSettings_LEAST_CONN, networking.LoadBalancerSettings_LEAST_REQUEST:
		c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
	case networking.LoadBalancerSettings_RANDOM:
		if !g.grpc { // grpc-go NACKs RANDOM
			c.LbPolicy = clusterv3.Cluster_RANDOM
		}
	case networking.LoadBalancerSettings_PASSTHROUGH:
		if !g.grpc {
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}
			c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED
			c.EdsClusterConfig = nil
			c.LoadAssignment = nil
			delete(g.endpoints, c.Name)
		}
	}
	if ch := lb.GetConsistentHash(); ch != nil {
		if ch.GetMaglev() != nil && !g.grpc {
			c.LbPolicy = clusterv3.Cluster_MAGLEV
			if n := ch.GetMaglev().GetTableSize(); n > 0 {
				c.LbConfig = &clusterv3.Cluster_MaglevLbConfig_{MaglevLbConfig: &clusterv3.Cluster_MaglevLbConfig{TableSize: wrapperspb.UInt64(n)}}
			}
		} else {
			c.LbPolicy = clusterv3.Cluster_RING_HASH
			size := ch.GetMinimumRingSize()
			if rh := ch.GetRingHash(); rh != nil && rh.GetMinimumRingSize() > 0 {
				size = rh.GetMinimumRingSize()
			}
			if size > 0 {
				c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{MinimumRingSize: wrapperspb.UInt64(size)}}
			}
		}
	}
	if ls := lb.GetLocalityLbSetting(); ls != nil && ls.GetEnabled().GetValue() && len(ls.GetDistribute()) > 0 {
		// Endpoint locality weights are honoured when distribute is set.
		if c.CommonLbConfig == nil {
			c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{}
		}
		c.CommonLbConfig.LocalityConfigSpecifier = &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig_{
			LocalityWeightedLbConfig: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig{}}
	}
}

// sendsUnhealthy reports whether a cluster's load assignment carries the
// unhealthy endpoints (marked UNHEALTHY), as istiod sends them: unless its
// outlierDetection sets minHealthPercent, whose panic threshold would route
// to them.
func sendsUnhealthy(p policy) bool { return p.outlier.GetMinHealthPercent() <= 0 }

// healthyUnless returns eps without the unhealthy endpoints when the policy
// does not send them.
func healthyUnless(eps []*registry.Endpoint, p policy) []*registry.Endpoint {
	if sendsUnhealthy(p) {
		return eps
	}
	var out []*registry.Endpoint
	for _, e := range eps {
		if e.Healthy {
			out = append(out, e)
		}
	}
	return out
}

func outlierDetection(od *networking.OutlierDetection) *clusterv3.OutlierDetection {
	out := &clusterv3.OutlierDetection{
		Interval:         od.GetInterval(),
		BaseEjectionTime: od.GetBaseEjectionTime(),
		// Istio turns off the enforcement of what the rule does not ask for.
		EnforcingConsecutive_5Xx:               u32(0),
		EnforcingConsecutiveGatewayFailure:     u32(0),
		EnforcingSuccessRate:                   u32(0),
		EnforcingConsecutiveLocalOriginFailure: u32(0),
	}
	if od.GetMaxEjectionPercent() > 0 {
		out.MaxEjectionPercent = u32(uint32(od.GetMaxEjectionPercent()))
	}
	if n := od.GetConsecutive_5XxErrors(); n != nil {
		out.Consecutive_5Xx = u32(n.GetValue())
		if n.GetValue() > 0 {
			out.EnforcingConsecutive_5Xx = u32(100)
		}
	} else if n := od.GetConsecutiveErrors(); n > 0 { // deprecated form
		out.Consecutive_5Xx = u32(uint32(n))
		out.EnforcingConsecutive_5Xx = u32(100)
	}
	if n := od.GetConsecutiveGatewayErrors(); n != nil {
		out.ConsecutiveGatewayFailure = u32(n.GetValue())
		if n.GetValue() > 0 {
			out.EnforcingConsecutiveGatewayFailure = u32(100)
		}
	}
	if od.GetSplitExternalLocalOriginErrors() {
		out.SplitExternalLocalOriginErrors = true
		if n := od.GetConsecutiveLocalOriginFailures(); n != nil {
			out.ConsecutiveLocalOriginFailure = u32(n.GetValue())
			out.EnforcingConsecutiveLocalOriginFailure = u32(100)
		}
	}
	return out
}

// tlsSocket builds the upstream TLS transport socket for a DestinationRule
// tls block; nil for plaintext.
func tlsSocket(t *networking.ClientTLSSettings, istioSNI string, serviceSANs []string) *corev3.TransportSocket {
	if t == nil {
		return nil
	}
	if t.GetMode() == networking.ClientTLSSettings_ISTIO_MUTUAL {
		sni, sans := t.GetSni(), t.GetSubjectAltNames()
		if sni == "" {
			sni = istioSNI
		}
		if len(sans) == 0 {
			sans = serviceSANs // Istio: the service's service accounts
		}
		return istioMutualSocket(sni, sans)
	}
	ctx := &tlsv3.UpstreamTlsContext{Sni: t.GetSni(), CommonTlsContext: &tlsv3.CommonTlsContext{}}
	var sans []*matcherv3.StringMatcher
	for _, s := range t.GetSubjectAltNames() {
		sans = append(sans, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}})
	}
	switch t.GetMode() {
	case networking.ClientTLSSettings_DISABLE:
		return nil
	case networking.ClientTLSSettings_SIMPLE, networking.ClientTLSSettings_MUTUAL:
		if cn := t.GetCredentialName(); cn != "" {
			// Istio's SDS names: kubernetes://NAME (client certificate,
			// MUTUAL) and kubernetes://NAME-cacert (the server's CA); a
			// gateway gets them from Secrets (gatewayClusterSecrets).
			if t.GetMode() == networking.ClientTLSSettings_MUTUAL {
				ctx.CommonTlsContext.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{{Name: credentialSDSName(cn), SdsConfig: adsSource()}}
			}
			ctx.CommonTlsContext.ValidationContextType = combinedValidation(credentialSDSName(cn)+model.CASuffix, t.GetSubjectAltNames())
			break
		}
		if t.GetMode() == networking.ClientTLSSettings_MUTUAL {
			ctx.CommonTlsContext.TlsCertificates = []*tlsv3.TlsCertificate{{
				CertificateChain: fileSource(t.GetClientCertificate()),
				PrivateKey:       fileSource(t.GetPrivateKey()),
			}}
		}
		if !t.GetInsecureSkipVerify().GetValue() {
			// Without caCertificates the server is verified against the
			// system bundle (Istio's VERIFY_CERTIFICATE_AT_CLIENT default).
			caFile := t.GetCaCertificates()
			if caFile == "" {
				caFile = systemCABundle
			}
			vc := &tlsv3.CertificateValidationContext{TrustedCa: fileSource(caFile), MatchTypedSubjectAltNames: typedSANs(sans)}
			if t.GetCaCrl() != "" {
				vc.Crl = fileSource(t.GetCaCrl())
			}
			ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
		}
	default:
		return nil
	}
	return &corev3.TransportSocket{Name: socketTLS, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: toAny(ctx)}}
}

// systemCABundle is the OS trust bundle Istio points at when a
// DestinationRule names no caCertificates.
const systemCABundle = "/etc/ssl/certs/ca-certificates.crt"

// typedSANs matches SPIFFE IDs against URI SANs and other names against
// DNS SANs.
func typedSANs(sans []*matcherv3.StringMatcher) []*tlsv3.SubjectAltNameMatcher {
	var out []*tlsv3.SubjectAltNameMatcher
	for _, s := range sans {
		typ := tlsv3.SubjectAltNameMatcher_DNS
		if strings.HasPrefix(s.GetExact(), "spiffe://") {
			typ = tlsv3.SubjectAltNameMatcher_URI
		}
		out = append(out, &tlsv3.SubjectAltNameMatcher{SanType: typ, Matcher: s})
	}
	return out
}

func fileSource(path string) *corev3.DataSource {
	if path == "" {
		return nil
	}
	return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: path}}
}

// hashPolicies turns a consistentHash load balancer into route hash policies.
func hashPolicies(lb *networking.LoadBalancerSettings) []*routev3.RouteAction_HashPolicy {
	ch := lb.GetConsistentHash()
	if ch == nil {
		return nil
	}
	var hp *routev3.RouteAction_HashPolicy
	switch {
	case ch.GetHttpHeaderName() != "":
		hp = &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
			Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: ch.GetHttpHeaderName()}}}
	case ch.GetHttpCookie() != nil:
		c := ch.GetHttpCookie()
		hp = &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{
			Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: c.GetName(), Path: c.GetPath(), Ttl: c.GetTtl()}}}
	case ch.GetUseSourceIp():
		hp = &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{
			ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}}
	case ch.GetHttpQueryParameterName() != "":
		hp = &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_QueryParameter_{
			QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: ch.GetHttpQueryParameterName()}}}
	default:
		return nil
	}
	return []*routev3.RouteAction_HashPolicy{hp}
}

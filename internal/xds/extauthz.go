package xds

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	extauthznetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/bowline-mesh/bowline/internal/model"
)

// This file turns a MeshConfig envoyExtAuthzHttp or envoyExtAuthzGrpc
// extension provider into Envoy's ext_authz filter configs, as Istio's
// authz builder does for AuthorizationPolicy action CUSTOM: an RBAC filter
// whose shadow rules (stat prefix istio_ext_authz_) name the matched CUSTOM
// policy in dynamic metadata, then an ext_authz filter enabled only when that
// name starts with istio-ext-authz-PROVIDER.

// Names and prefixes of the external authorization filters, as Istio's.
const (
	filterExtAuthzHTTP = "envoy.filters.http.ext_authz"
	filterExtAuthzNet  = "envoy.filters.network.ext_authz"
	// extAuthzShadowPrefix is the shadow_rules_stat_prefix of the RBAC
	// filter in front of ext_authz; its metadata key is this prefix and
	// shadow_effective_policy_id.
	extAuthzShadowPrefix = "istio_ext_authz_"
	// extAuthzDefaultTimeout is Istio's provider timeout when none is set.
	extAuthzDefaultTimeout = 600 * time.Second
)

// extAuthzProvider is a CUSTOM provider resolved for the proxy being
// generated: the HTTP filter config and, for gRPC providers, the network
// filter config; err says why the provider cannot be used (then the CUSTOM
// rules deny).
type extAuthzProvider struct {
	http *extauthzv3.ExtAuthz
	tcp  *extauthznetv3.ExtAuthz
	err  error
}

// extAuthzProvider resolves the MeshConfig extension provider name.
func (g *gen) extAuthzProvider(name string) extAuthzProvider {
	p := g.snap.Mesh().Provider(name)
	if p == nil {
		var names []string
		for _, q := range g.snap.Mesh().Providers() {
			if q.Kind == model.ProviderEnvoyExtAuthzHTTP || q.Kind == model.ProviderEnvoyExtAuthzGRPC {
				names = append(names, q.Name)
			}
		}
		return extAuthzProvider{err: fmt.Errorf("available providers are %v but found %q", names, name)}
	}
	if p.Kind != model.ProviderEnvoyExtAuthzHTTP && p.Kind != model.ProviderEnvoyExtAuthzGRPC {
		return extAuthzProvider{err: fmt.Errorf("provider %q is a %s provider, not envoyExtAuthzHttp or envoyExtAuthzGrpc", name, p.Kind)}
	}
	if p.Port < 1 || p.Port > 65535 {
		return extAuthzProvider{err: fmt.Errorf("provider %q: port must be in the range [1, 65535], found: %d", name, p.Port)}
	}
	svc := g.snap.LookupService(g.proxy, p.Service)
	if svc == nil || (p.Namespace != "" && svc.Namespace != p.Namespace) {
		return extAuthzProvider{err: fmt.Errorf("provider %q: could not find service %s in the service registry", name, p.Service)}
	}
	cluster := OutboundCluster(p.Port, "", svc.Hostname)
	if p.Kind == model.ProviderEnvoyExtAuthzHTTP {
		return extAuthzHTTPConfig(name, svc.Hostname, cluster, p.Raw.GetEnvoyExtAuthzHttp())
	}
	return extAuthzGRPCConfig(name, svc.Hostname, cluster, p.Raw.GetEnvoyExtAuthzGrpc())
}

func extAuthzHTTPConfig(name, hostname, cluster string, c *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationHttpProvider) extAuthzProvider {
	status, err := statusOnError(c.GetStatusOnError())
	if err != nil {
		return extAuthzProvider{err: fmt.Errorf("provider %q: %w", name, err)}
	}
	if pp := c.GetPathPrefix(); pp != "" {
		if _, err := url.Parse(pp); err != nil || !strings.HasPrefix(pp, "/") {
			return extAuthzProvider{err: fmt.Errorf("provider %q: pathPrefix must begin with `/`, found: %q", name, pp)}
		}
	}
	svc := &extauthzv3.HttpService{
		PathPrefix: c.GetPathPrefix(),
		ServerUri: &corev3.HttpUri{Uri: "http://" + hostname, Timeout: timeoutOr(c.GetTimeout()),
			HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: cluster}},
	}
	if add := c.GetIncludeAdditionalHeadersInCheck(); len(add) > 0 {
		keys := make([]string, 0, len(add))
		for k := range add {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		rq := &extauthzv3.AuthorizationRequest{}
		for _, k := range keys {
			rq.HeadersToAdd = append(rq.HeadersToAdd, &corev3.HeaderValue{Key: k, Value: add[k]})
		}
		svc.AuthorizationRequest = rq
	}
	if len(c.GetHeadersToUpstreamOnAllow())+len(c.GetHeadersToDownstreamOnDeny())+len(c.GetHeadersToDownstreamOnAllow()) > 0 {
		svc.AuthorizationResponse = &extauthzv3.AuthorizationResponse{
			AllowedUpstreamHeaders:        headerList(c.GetHeadersToUpstreamOnAllow()),
			AllowedClientHeaders:          headerList(c.GetHeadersToDownstreamOnDeny()),
			AllowedClientHeadersOnSuccess: headerList(c.GetHeadersToDownstreamOnAllow()),
		}
	}
	allowed := headerList(c.GetIncludeRequestHeadersInCheck())
	if allowed == nil {
		allowed = headerList(c.GetIncludeHeadersInCheck()) //nolint:staticcheck // the deprecated field still applies when the new one is unset
	}
	return extAuthzProvider{http: &extauthzv3.ExtAuthz{
		Services:              &extauthzv3.ExtAuthz_HttpService{HttpService: svc},
		StatusOnError:         status,
		FailureModeAllow:      c.GetFailOpen(),
		ClearRouteCache:       c.GetClearRouteCache(),
		TransportApiVersion:   corev3.ApiVersion_V3,
		FilterEnabledMetadata: extAuthzEnabled(filterRBACHTTP, name),
		WithRequestBody:       bodySettings(c.GetIncludeRequestBodyInCheck()),
		AllowedHeaders:        allowed,
	}}
}

func extAuthzGRPCConfig(name, hostname, cluster string, c *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider) extAuthzProvider {
	status, err := statusOnError(c.GetStatusOnError())
	if err != nil {
		return extAuthzProvider{err: fmt.Errorf("provider %q: %w", name, err)}
	}
	grpc := func() *corev3.GrpcService {
		return &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: cluster, Authority: hostname}},
			Timeout:         timeoutOr(c.GetTimeout()),
		}
	}
	return extAuthzProvider{
		http: &extauthzv3.ExtAuthz{
			Services:              &extauthzv3.ExtAuthz_GrpcService{GrpcService: grpc()},
			StatusOnError:         status,
			FailureModeAllow:      c.GetFailOpen(),
			ClearRouteCache:       c.GetClearRouteCache(),
			TransportApiVersion:   corev3.ApiVersion_V3,
			FilterEnabledMetadata: extAuthzEnabled(filterRBACHTTP, name),
			WithRequestBody:       bodySettings(c.GetIncludeRequestBodyInCheck()),
		},
		tcp: &extauthznetv3.ExtAuthz{
			StatPrefix:            rbacTCPStatPrefix,
			GrpcService:           grpc(),
			FailureModeAllow:      c.GetFailOpen(),
			TransportApiVersion:   corev3.ApiVersion_V3,
			FilterEnabledMetadata: extAuthzEnabled(filterRBACNet, name),
		},
	}
}

// statusOnError parses a provider's statusOnError ("" keeps Envoy's 403).
func statusOnError(s string) (*typev3.HttpStatus, error) {
	if s == "" {
		return nil, nil
	}
	code, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("invalid statusOnError %q: not a number", s)
	}
	if _, ok := typev3.StatusCode_name[int32(code)]; !ok {
		return nil, fmt.Errorf("unsupported statusOnError %s: not an HTTP status Envoy knows", s)
	}
	return &typev3.HttpStatus{Code: typev3.StatusCode(code)}, nil
}

func timeoutOr(t *durationpb.Duration) *durationpb.Duration {
	if t == nil {
		return durationpb.New(extAuthzDefaultTimeout)
	}
	return t
}

func bodySettings(b *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationRequestBody) *extauthzv3.BufferSettings {
	if b == nil {
		return nil
	}
	return &extauthzv3.BufferSettings{MaxRequestBytes: b.GetMaxRequestBytes(), AllowPartialMessage: b.GetAllowPartialMessage(), PackAsBytes: b.GetPackAsBytes()}
}

// headerList is Istio's header list matcher: case-insensitive, "*x" a
// suffix, "x*" a prefix, anything else exact; nil for no headers.
func headerList(headers []string) *matcherv3.ListStringMatcher {
	if len(headers) == 0 {
		return nil
	}
	out := &matcherv3.ListStringMatcher{}
	for _, h := range headers {
		m := &matcherv3.StringMatcher{IgnoreCase: true}
		if s, ok := strings.CutPrefix(h, "*"); ok {
			m.MatchPattern = &matcherv3.StringMatcher_Suffix{Suffix: s}
		} else if p, ok := strings.CutSuffix(h, "*"); ok {
			m.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: p}
		} else {
			m.MatchPattern = &matcherv3.StringMatcher_Exact{Exact: h}
		}
		out.Patterns = append(out.Patterns, m)
	}
	return out
}

// extAuthzEnabled enables an ext_authz filter when the RBAC filter named
// filter recorded a matched CUSTOM policy of provider.
func extAuthzEnabled(filter, provider string) *matcherv3.MetadataMatcher {
	return &matcherv3.MetadataMatcher{
		Filter: filter,
		Path:   []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: extAuthzShadowPrefix + "shadow_effective_policy_id"}}},
		Value: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: extAuthzPrefix + "-" + provider}}}},
	}
}

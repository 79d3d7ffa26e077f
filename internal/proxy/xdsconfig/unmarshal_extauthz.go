package xdsconfig

import (
	"fmt"
	"net/http"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	extauthznetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/bowline-mesh/bowline/internal/proxy/authz"
	"github.com/bowline-mesh/bowline/internal/proxy/extauthz"
)

// Type URLs of the external authorization filters and their per-route config.
const (
	typeExtAuthz         = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"
	typeExtAuthzPerRoute = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute"
	typeExtAuthzNetwork  = "type.googleapis.com/envoy.extensions.filters.network.ext_authz.v3.ExtAuthz"
)

// ExtAuthzFilter is a checked envoy.extensions.filters.http.ext_authz.v3.ExtAuthz.
type ExtAuthzFilter struct {
	// Config is the filter's settings; immutable.
	Config *extauthz.Config
	// ClearRouteCache picks the route again after an allowed check edited
	// the request headers.
	ClearRouteCache bool
}

// ExtAuthzPerRoute is a checked ExtAuthzPerRoute of a route or virtual host.
type ExtAuthzPerRoute struct {
	// Disabled skips the check on this route.
	Disabled bool
	// ContextExtensions go into the CheckRequest (gRPC services).
	ContextExtensions map[string]string
}

// unmarshalExtAuthz checks an HTTP ext_authz filter.
func unmarshalExtAuthz(a *anypb.Any, path string) (*ExtAuthzFilter, error) {
	c := &extauthzv3.ExtAuthz{}
	if err := a.UnmarshalTo(c); err != nil {
		return nil, fmt.Errorf("field %s: %w", path, err)
	}
	if err := checkFields(c, path, "grpc_service", "http_service", "transport_api_version", "failure_mode_allow",
		"failure_mode_allow_header_add", "with_request_body", "clear_route_cache", "status_on_error", "allowed_headers",
		"disallowed_headers", "filter_enabled_metadata", "include_peer_certificate", "include_tls_session",
		"metadata_context_namespaces", "stat_prefix", "charge_cluster_response_stats"); err != nil {
		return nil, err
	}
	if v := c.GetTransportApiVersion(); v != corev3.ApiVersion_V3 {
		return nil, fmt.Errorf("field %s.transport_api_version: %s unsupported (only V3)", path, v)
	}
	cfg := &extauthz.Config{
		FailureModeAllow: c.GetFailureModeAllow(), FailureModeAllowHeaderAdd: c.GetFailureModeAllowHeaderAdd(),
		IncludePeerCertificate: c.GetIncludePeerCertificate(), IncludeTLSSession: c.GetIncludeTlsSession(),
		MetadataNamespaces: c.GetMetadataContextNamespaces(), StatPrefix: c.GetStatPrefix(), StatusOnError: http.StatusForbidden,
	}
	if s := c.GetStatusOnError(); s != nil {
		if s.GetCode() < 100 || s.GetCode() > 599 {
			return nil, fmt.Errorf("field %s.status_on_error.code: %d is not an HTTP status", path, s.GetCode())
		}
		cfg.StatusOnError = int(s.GetCode())
	}
	var err error
	switch svc := c.GetServices().(type) {
	case *extauthzv3.ExtAuthz_GrpcService:
		err = authzGRPCService(svc.GrpcService, path+".grpc_service", cfg)
	case *extauthzv3.ExtAuthz_HttpService:
		err = authzHTTPService(svc.HttpService, path+".http_service", cfg)
	default:
		err = fmt.Errorf("field %s: one of grpc_service and http_service is required", path)
	}
	if err != nil {
		return nil, err
	}
	if cfg.AllowedHeaders, err = listMatcher(c.GetAllowedHeaders(), path+".allowed_headers"); err != nil {
		return nil, err
	}
	if cfg.DisallowedHeaders, err = listMatcher(c.GetDisallowedHeaders(), path+".disallowed_headers"); err != nil {
		return nil, err
	}
	if b := c.GetWithRequestBody(); b != nil {
		if err := checkFields(b, path+".with_request_body", "max_request_bytes", "allow_partial_message", "pack_as_bytes"); err != nil {
			return nil, err
		}
		if b.GetMaxRequestBytes() == 0 {
			return nil, fmt.Errorf("field %s.with_request_body.max_request_bytes: must be greater than 0", path)
		}
		cfg.Body = &extauthz.BodySettings{MaxBytes: b.GetMaxRequestBytes(), AllowPartial: b.GetAllowPartialMessage(), PackAsBytes: b.GetPackAsBytes()}
	}
	if m := c.GetFilterEnabledMetadata(); m != nil {
		mm, err := authz.CompileMetadataMatcher(m, path+".filter_enabled_metadata")
		if err != nil {
			return nil, err
		}
		cfg.Enabled = &mm
	}
	return &ExtAuthzFilter{Config: cfg, ClearRouteCache: c.GetClearRouteCache()}, nil
}

// authzGRPCService reads an envoy_grpc service (google_grpc needs credentials
// Bowline does not take from xDS).
func authzGRPCService(g *corev3.GrpcService, path string, cfg *extauthz.Config) error {
	if err := checkFields(g, path, "envoy_grpc", "timeout"); err != nil {
		return err
	}
	eg := g.GetEnvoyGrpc()
	if eg == nil {
		return fmt.Errorf("field %s.envoy_grpc: missing", path)
	}
	if err := checkFields(eg, path+".envoy_grpc", "cluster_name", "authority"); err != nil {
		return err
	}
	if eg.GetClusterName() == "" {
		return fmt.Errorf("field %s.envoy_grpc.cluster_name: empty", path)
	}
	cfg.Protocol, cfg.Cluster, cfg.Authority = extauthz.GRPC, eg.GetClusterName(), eg.GetAuthority()
	cfg.Timeout = extauthz.DefaultTimeout
	if t := g.GetTimeout(); t != nil {
		cfg.Timeout = t.AsDuration()
	}
	return nil
}

func authzHTTPService(h *extauthzv3.HttpService, path string, cfg *extauthz.Config) error {
	if err := checkFields(h, path, "server_uri", "path_prefix", "authorization_request", "authorization_response"); err != nil {
		return err
	}
	u := h.GetServerUri()
	if u == nil {
		return fmt.Errorf("field %s.server_uri: missing", path)
	}
	if err := checkFields(u, path+".server_uri", "uri", "cluster", "timeout"); err != nil {
		return err
	}
	if u.GetCluster() == "" {
		return fmt.Errorf("field %s.server_uri.cluster: empty", path)
	}
	if u.GetTimeout() == nil {
		return fmt.Errorf("field %s.server_uri.timeout: missing", path)
	}
	cfg.Protocol, cfg.Cluster, cfg.Timeout, cfg.PathPrefix = extauthz.HTTP, u.GetCluster(), u.GetTimeout().AsDuration(), h.GetPathPrefix()
	var err error
	if rq := h.GetAuthorizationRequest(); rq != nil {
		p := path + ".authorization_request"
		if err := checkFields(rq, p, "allowed_headers", "headers_to_add"); err != nil {
			return err
		}
		//nolint:staticcheck // the deprecated allowed_headers still configures HTTP services
		if cfg.AllowedHeaders, err = listMatcher(rq.GetAllowedHeaders(), p+".allowed_headers"); err != nil {
			return err
		}
		for i, hv := range rq.GetHeadersToAdd() {
			if hv.GetKey() == "" {
				return fmt.Errorf("field %s.headers_to_add[%d].key: empty", p, i)
			}
			cfg.HeadersToAdd = append(cfg.HeadersToAdd, extauthz.Header{Key: hv.GetKey(), Value: hv.GetValue()})
		}
	}
	if rs := h.GetAuthorizationResponse(); rs != nil {
		p := path + ".authorization_response"
		if err := checkFields(rs, p, "allowed_upstream_headers", "allowed_upstream_headers_to_append",
			"allowed_client_headers", "allowed_client_headers_on_success"); err != nil {
			return err
		}
		for _, l := range []struct {
			field string
			m     *matcherv3.ListStringMatcher
			dst   *[]authz.StringMatcher
		}{
			{"allowed_upstream_headers", rs.GetAllowedUpstreamHeaders(), &cfg.UpstreamHeaders},
			{"allowed_upstream_headers_to_append", rs.GetAllowedUpstreamHeadersToAppend(), &cfg.UpstreamHeadersToAppend},
			{"allowed_client_headers", rs.GetAllowedClientHeaders(), &cfg.ClientHeaders},
			{"allowed_client_headers_on_success", rs.GetAllowedClientHeadersOnSuccess(), &cfg.ClientHeadersOnSuccess},
		} {
			if *l.dst, err = listMatcher(l.m, p+"."+l.field); err != nil {
				return err
			}
		}
	}
	return nil
}

// listMatcher compiles a ListStringMatcher; nil when unset (which differs
// from an empty list).
func listMatcher(l *matcherv3.ListStringMatcher, path string) ([]authz.StringMatcher, error) {
	if l == nil {
		return nil, nil
	}
	out := []authz.StringMatcher{}
	for i, m := range l.GetPatterns() {
		p := fmt.Sprintf("%s.patterns[%d]", path, i)
		if _, err := convertStringMatcher(m, p); err != nil {
			return nil, err
		}
		sm, err := authz.CompileStringMatcher(m, p)
		if err != nil {
			return nil, err
		}
		out = append(out, sm)
	}
	return out, nil
}

// unmarshalExtAuthzPerRoute checks an ExtAuthzPerRoute.
func unmarshalExtAuthzPerRoute(a *anypb.Any, path string) (*ExtAuthzPerRoute, error) {
	c := &extauthzv3.ExtAuthzPerRoute{}
	if err := a.UnmarshalTo(c); err != nil {
		return nil, fmt.Errorf("field %s: %w", path, err)
	}
	switch o := c.GetOverride().(type) {
	case *extauthzv3.ExtAuthzPerRoute_Disabled:
		return &ExtAuthzPerRoute{Disabled: o.Disabled}, nil
	case *extauthzv3.ExtAuthzPerRoute_CheckSettings:
		if err := checkFields(o.CheckSettings, path+".check_settings", "context_extensions"); err != nil {
			return nil, err
		}
		return &ExtAuthzPerRoute{ContextExtensions: o.CheckSettings.GetContextExtensions()}, nil
	}
	return nil, fmt.Errorf("field %s: one of disabled and check_settings is required", path)
}

// unmarshalNetworkExtAuthz checks a network ext_authz filter (gRPC only).
func unmarshalNetworkExtAuthz(a *anypb.Any, path string) (*extauthz.Config, error) {
	c := &extauthznetv3.ExtAuthz{}
	if err := a.UnmarshalTo(c); err != nil {
		return nil, fmt.Errorf("field %s: %w", path, err)
	}
	if err := checkFields(c, path, "stat_prefix", "grpc_service", "failure_mode_allow", "include_peer_certificate",
		"transport_api_version", "filter_enabled_metadata", "include_tls_session"); err != nil {
		return nil, err
	}
	if v := c.GetTransportApiVersion(); v != corev3.ApiVersion_V3 {
		return nil, fmt.Errorf("field %s.transport_api_version: %s unsupported (only V3)", path, v)
	}
	cfg := &extauthz.Config{FailureModeAllow: c.GetFailureModeAllow(), IncludePeerCertificate: c.GetIncludePeerCertificate(),
		IncludeTLSSession: c.GetIncludeTlsSession(), StatPrefix: c.GetStatPrefix(), StatusOnError: http.StatusForbidden}
	if c.GetGrpcService() == nil {
		return nil, fmt.Errorf("field %s.grpc_service: missing", path)
	}
	if err := authzGRPCService(c.GetGrpcService(), path+".grpc_service", cfg); err != nil {
		return nil, err
	}
	if m := c.GetFilterEnabledMetadata(); m != nil {
		mm, err := authz.CompileMetadataMatcher(m, path+".filter_enabled_metadata")
		if err != nil {
			return nil, err
		}
		cfg.Enabled = &mm
	}
	return cfg, nil
}

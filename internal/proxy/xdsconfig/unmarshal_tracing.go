package xdsconfig

import (
	"fmt"
	"net/url"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tracingtypev3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// Tracer names and typed_config type URLs Bowline implements.
const (
	tracerOpenTelemetry = "envoy.tracers.opentelemetry"
	tracerZipkin        = "envoy.tracers.zipkin"
	typeOTelConfig      = "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig"
	typeZipkinConfig    = "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig"
)

func unmarshalTracing(t *hcmv3.HttpConnectionManager_Tracing, path string) (*Tracing, error) {
	if err := checkFields(t, path, "client_sampling", "random_sampling", "overall_sampling", "verbose",
		"max_path_tag_length", "custom_tags", "provider", "spawn_upstream_span"); err != nil {
		return nil, err
	}
	out := &Tracing{ClientSampling: 100, RandomSampling: 100, OverallSampling: 100, MaxPathTagLength: 256,
		SpawnUpstreamSpan: t.GetSpawnUpstreamSpan().GetValue()}
	for _, s := range []struct {
		name string
		p    *typev3.Percent
		dst  *float64
	}{{"client_sampling", t.GetClientSampling(), &out.ClientSampling}, {"random_sampling", t.GetRandomSampling(), &out.RandomSampling},
		{"overall_sampling", t.GetOverallSampling(), &out.OverallSampling}} {
		if s.p == nil {
			continue
		}
		if v := s.p.GetValue(); v < 0 || v > 100 {
			return nil, fmt.Errorf("field %s.%s.value: %v is not a percentage", path, s.name, v)
		}
		*s.dst = s.p.GetValue()
	}
	if n := t.GetMaxPathTagLength(); n != nil {
		out.MaxPathTagLength = int(n.GetValue())
	}
	for i, ct := range t.GetCustomTags() {
		p := fmt.Sprintf("%s.custom_tags[%d]", path, i)
		tag, err := unmarshalCustomTag(ct, p)
		if err != nil {
			return nil, err
		}
		out.CustomTags = append(out.CustomTags, tag)
	}
	if pr := t.GetProvider(); pr != nil {
		p, err := unmarshalTraceProvider(pr, path+".provider")
		if err != nil {
			return nil, err
		}
		out.Provider = p
	}
	return out, nil
}

func unmarshalCustomTag(ct *tracingtypev3.CustomTag, path string) (CustomTag, error) {
	if err := checkFields(ct, path, "tag", "literal", "environment", "request_header"); err != nil {
		return CustomTag{}, err
	}
	out := CustomTag{Tag: ct.GetTag()}
	if out.Tag == "" {
		return out, fmt.Errorf("field %s.tag: empty", path)
	}
	switch v := ct.GetType().(type) {
	case *tracingtypev3.CustomTag_Literal_:
		out.Literal = v.Literal.GetValue()
	case *tracingtypev3.CustomTag_Environment_:
		out.Env, out.Default = v.Environment.GetName(), v.Environment.GetDefaultValue()
		if out.Env == "" {
			return out, fmt.Errorf("field %s.environment.name: empty", path)
		}
	case *tracingtypev3.CustomTag_RequestHeader:
		out.Header, out.Default = strings.ToLower(v.RequestHeader.GetName()), v.RequestHeader.GetDefaultValue()
		if out.Header == "" {
			return out, fmt.Errorf("field %s.request_header.name: empty", path)
		}
	default:
		return out, fmt.Errorf("field %s: one of literal, environment or request_header is required", path)
	}
	return out, nil
}

func unmarshalTraceProvider(pr *tracev3.Tracing_Http, path string) (*TraceProvider, error) {
	if err := checkFields(pr, path, "name", "typed_config"); err != nil {
		return nil, err
	}
	tc := pr.GetTypedConfig()
	if tc == nil {
		return nil, fmt.Errorf("field %s.typed_config: missing", path)
	}
	switch tc.GetTypeUrl() {
	case typeOTelConfig:
		c := &tracev3.OpenTelemetryConfig{}
		if err := tc.UnmarshalTo(c); err != nil {
			return nil, fmt.Errorf("field %s.typed_config: %w", path, err)
		}
		return unmarshalOTelConfig(c, path+".typed_config")
	case typeZipkinConfig:
		c := &tracev3.ZipkinConfig{}
		if err := tc.UnmarshalTo(c); err != nil {
			return nil, fmt.Errorf("field %s.typed_config: %w", path, err)
		}
		return unmarshalZipkinConfig(c, path+".typed_config")
	}
	return nil, fmt.Errorf("field %s: tracer %q (%s) unsupported (supported: %s, %s)", path, pr.GetName(), tc.GetTypeUrl(), tracerOpenTelemetry, tracerZipkin)
}

func unmarshalOTelConfig(c *tracev3.OpenTelemetryConfig, path string) (*TraceProvider, error) {
	if err := checkFields(c, path, "grpc_service", "http_service", "service_name"); err != nil {
		return nil, err
	}
	out := &TraceProvider{Kind: TraceOpenTelemetry, ServiceName: c.GetServiceName(), TraceID128: true}
	switch {
	case c.GetGrpcService() != nil && c.GetHttpService() != nil:
		return nil, fmt.Errorf("field %s: only one of grpc_service and http_service may be set", path)
	case c.GetGrpcService() != nil:
		gs := c.GetGrpcService()
		if err := checkFields(gs, path+".grpc_service", "envoy_grpc", "timeout", "initial_metadata"); err != nil {
			return nil, err
		}
		eg := gs.GetEnvoyGrpc()
		if eg == nil || eg.GetClusterName() == "" {
			return nil, fmt.Errorf("field %s.grpc_service.envoy_grpc.cluster_name: required", path)
		}
		if err := checkFields(eg, path+".grpc_service.envoy_grpc", "cluster_name", "authority"); err != nil {
			return nil, err
		}
		out.GRPC, out.Cluster, out.Authority, out.Timeout = true, eg.GetClusterName(), eg.GetAuthority(), gs.GetTimeout().AsDuration()
	case c.GetHttpService() != nil:
		if err := httpService(c.GetHttpService(), path+".http_service", out); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("field %s: grpc_service or http_service is required", path)
	}
	return out, nil
}

func unmarshalZipkinConfig(c *tracev3.ZipkinConfig, path string) (*TraceProvider, error) {
	if err := checkFields(c, path, "collector_cluster", "collector_endpoint", "trace_id_128bit", "shared_span_context",
		"collector_endpoint_version", "collector_hostname", "collector_service", "trace_context_option"); err != nil {
		return nil, err
	}
	if c.GetCollectorEndpointVersion() != tracev3.ZipkinConfig_HTTP_JSON {
		return nil, fmt.Errorf("field %s.collector_endpoint_version: only HTTP_JSON (Zipkin v2 JSON) is supported", path)
	}
	if c.GetSharedSpanContext() != nil && c.GetSharedSpanContext().GetValue() {
		return nil, fmt.Errorf("field %s.shared_span_context: only false is supported (client and server spans get their own ids)", path)
	}
	out := &TraceProvider{Kind: TraceZipkin, TraceID128: c.GetTraceId_128Bit()}
	if cs := c.GetCollectorService(); cs != nil {
		if err := httpService(cs, path+".collector_service", out); err != nil {
			return nil, err
		}
		return out, nil
	}
	if c.GetCollectorCluster() == "" {
		return nil, fmt.Errorf("field %s.collector_cluster: required (or collector_service)", path)
	}
	out.Cluster, out.Path, out.Authority = c.GetCollectorCluster(), c.GetCollectorEndpoint(), c.GetCollectorHostname()
	if out.Path == "" || !strings.HasPrefix(out.Path, "/") {
		return nil, fmt.Errorf("field %s.collector_endpoint: %q is not a path", path, out.Path)
	}
	return out, nil
}

// httpService reads an HttpService (uri, cluster, timeout) into out.
func httpService(hs *corev3.HttpService, path string, out *TraceProvider) error {
	if err := checkFields(hs, path, "http_uri", "request_headers_to_add"); err != nil {
		return err
	}
	hu := hs.GetHttpUri()
	if hu == nil || hu.GetCluster() == "" {
		return fmt.Errorf("field %s.http_uri.cluster: required", path)
	}
	uri := hu.GetUri()
	if !strings.Contains(uri, "://") {
		uri = "http://" + uri
	}
	u, err := url.Parse(uri)
	if err != nil || u.Host == "" {
		return fmt.Errorf("field %s.http_uri.uri: %q is not a URL", path, hu.GetUri())
	}
	out.Cluster, out.Authority, out.Path, out.Timeout = hu.GetCluster(), u.Host, u.EscapedPath(), hu.GetTimeout().AsDuration()
	if out.Path == "" {
		out.Path = "/"
	}
	return nil
}

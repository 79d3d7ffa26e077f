package xds

import (
	"github.com/bowline-mesh/bowline/internal/telemetry"
	"net/url"
	"sort"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tracingtypev3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	telemetryv1alpha1 "istio.io/api/telemetry/v1alpha1"

	"github.com/bowline-mesh/bowline/internal/model"
)

// Envoy tracer extension names.
const (
	tracerOpenTelemetry = "envoy.tracers.opentelemetry"
	tracerZipkin        = "envoy.tracers.zipkin"
)

// hcmTracing is the HCM tracing block for one traffic direction of the
// proxy, as istiod builds it (pilot/pkg/networking/core/tracing.go): the
// provider's typed config pointing at the provider service's outbound
// cluster, sampling (client and overall 100%, random from Telemetry or
// MeshConfig), Istio's service tags plus the Telemetry custom tags, and an
// upstream span on gateways. nil when this direction does not trace.
func (g *gen) hcmTracing(outbound bool) *hcmv3.HttpConnectionManager_Tracing {
	if g.grpc {
		return nil
	}
	if g.tracing == nil {
		tc := g.snap.Tracing(g.proxy)
		g.tracing = &tc
	}
	spec := g.tracing.Server
	if outbound || g.proxy.Type == model.Router {
		spec = g.tracing.Client
	}
	if !spec.Enabled {
		return nil
	}
	provider := g.tracingProvider(spec.Provider)
	if provider == nil {
		return nil
	}
	t := &hcmv3.HttpConnectionManager_Tracing{
		ClientSampling:  &typev3.Percent{Value: 100},
		OverallSampling: &typev3.Percent{Value: 100},
		RandomSampling:  &typev3.Percent{Value: spec.Sampling},
		CustomTags:      g.tracingTags(spec.CustomTags),
		Provider:        provider,
	}
	if g.proxy.Type == model.Router {
		t.SpawnUpstreamSpan = wrapperspb.Bool(true)
	}
	if n := tracingMaxTagLength(spec.Provider); n > 0 {
		t.MaxPathTagLength = wrapperspb.UInt32(n)
	}
	return t
}

func tracingMaxTagLength(p *model.ExtensionProvider) uint32 {
	switch p.Kind {
	case model.ProviderOpenTelemetry:
		return p.Raw.GetOpentelemetry().GetMaxTagLength()
	case model.ProviderZipkin:
		return p.Raw.GetZipkin().GetMaxTagLength()
	}
	return 0
}

// tracingProvider is the tracer config of p aimed at the outbound cluster
// of its service, or nil when the service is unknown or the kind untraced.
func (g *gen) tracingProvider(p *model.ExtensionProvider) *tracev3.Tracing_Http {
	if p.Kind != model.ProviderOpenTelemetry && p.Kind != model.ProviderZipkin {
		return nil
	}
	host := p.Service
	svc := g.snap.LookupService(g.proxy, host)
	if svc == nil {
		return nil // bowline analyze reports it (IST0101)
	}
	cluster := OutboundCluster(p.Port, "", svc.Hostname)
	authority := svc.Hostname + ":" + portName(p.Port)
	if p.Kind == model.ProviderZipkin {
		z := p.Raw.GetZipkin()
		path := z.GetPath()
		if path == "" {
			path = "/api/v2/spans"
		}
		timeout := z.GetTimeout()
		if timeout == nil {
			timeout = durationpb.New(5 * time.Second)
		}
		return &tracev3.Tracing_Http{Name: tracerZipkin, ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: toAny(&tracev3.ZipkinConfig{
			CollectorEndpointVersion: tracev3.ZipkinConfig_HTTP_JSON,
			TraceId_128Bit:           !z.GetEnable_64BitTraceId(),
			SharedSpanContext:        wrapperspb.Bool(false),
			CollectorService: &corev3.HttpService{HttpUri: &corev3.HttpUri{
				Uri: "http://" + authority + path, HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: cluster}, Timeout: timeout}},
		})}}
	}
	o := p.Raw.GetOpentelemetry()
	oc := &tracev3.OpenTelemetryConfig{ServiceName: serviceCluster(g.proxy)}
	if h := o.GetHttp(); h != nil {
		uri, err := url.JoinPath("http://"+authority, h.GetPath())
		if err != nil {
			return nil
		}
		oc.HttpService = &corev3.HttpService{HttpUri: &corev3.HttpUri{Uri: uri, HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: cluster},
			Timeout: h.GetTimeout()}}
	} else {
		oc.GrpcService = &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: cluster, Authority: authority}},
			Timeout:         o.GetGrpc().GetTimeout(),
		}
	}
	return &tracev3.Tracing_Http{Name: tracerOpenTelemetry, ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: toAny(oc)}}
}

// canonicalService is Istio's canonical service name of p's workload.
func canonicalService(p *model.Proxy) string {
	if c := telemetry.CanonicalService(p.Labels, p.WorkloadName); c != "" {
		return c
	}
	return "unknown"
}

// serviceCluster is "CANONICAL.NAMESPACE", the reporting service of p's
// spans as Istio names it (productpage.default).
func serviceCluster(p *model.Proxy) string { return canonicalService(p) + "." + p.Namespace }

// tracingTags are Istio's service tags (istio.canonical_service, ...) and
// the Telemetry custom tags, sorted by tag name.
func (g *gen) tracingTags(custom map[string]*telemetryv1alpha1.Tracing_CustomTag) []*tracingtypev3.CustomTag {
	lit := func(tag, v string) *tracingtypev3.CustomTag {
		return &tracingtypev3.CustomTag{Tag: tag, Type: &tracingtypev3.CustomTag_Literal_{Literal: &tracingtypev3.CustomTag_Literal{Value: v}}}
	}
	rev := firstNonEmpty(g.proxy.Labels["service.istio.io/canonical-revision"], g.proxy.Labels["app.kubernetes.io/version"], g.proxy.Labels["version"], "latest")
	meshID := firstNonEmpty(g.snap.Mesh().Raw().GetDefaultConfig().GetMeshId(), g.snap.Mesh().TrustDomain)
	tags := []*tracingtypev3.CustomTag{
		lit("istio.canonical_revision", rev),
		lit("istio.canonical_service", canonicalService(g.proxy)),
		lit("istio.mesh_id", meshID),
		lit("istio.namespace", g.proxy.Namespace),
		lit("istio.cluster_id", "Kubernetes"),
	}
	for name, ct := range custom {
		t := &tracingtypev3.CustomTag{Tag: name}
		switch v := ct.GetType().(type) {
		case *telemetryv1alpha1.Tracing_CustomTag_Literal:
			t.Type = &tracingtypev3.CustomTag_Literal_{Literal: &tracingtypev3.CustomTag_Literal{Value: v.Literal.GetValue()}}
		case *telemetryv1alpha1.Tracing_CustomTag_Header:
			t.Type = &tracingtypev3.CustomTag_RequestHeader{RequestHeader: &tracingtypev3.CustomTag_Header{
				Name: v.Header.GetName(), DefaultValue: v.Header.GetDefaultValue()}}
		case *telemetryv1alpha1.Tracing_CustomTag_Environment:
			t.Type = &tracingtypev3.CustomTag_Environment_{Environment: &tracingtypev3.CustomTag_Environment{
				Name: v.Environment.GetName(), DefaultValue: v.Environment.GetDefaultValue()}}
		default:
			continue // formatter tags are not implemented (validation warns)
		}
		tags = append(tags, t)
	}
	sort.Slice(tags, func(i, j int) bool { return tags[i].Tag < tags[j].Tag })
	return tags
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// routeOperation is the decorator operation (span name) of a route, as
// istiod's GetRouteOperation: "host:port/path" for a single destination,
// "vsName:port/path" otherwise.
func routeOperation(r *routev3.Route, vsName string, port uint32) string {
	path := "/*"
	switch ps := r.GetMatch().GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		path = ps.Prefix + "*"
	case *routev3.RouteMatch_Path:
		path = ps.Path
	case *routev3.RouteMatch_SafeRegex:
		path = ps.SafeRegex.GetRegex()
	}
	if parts := strings.Split(r.GetRoute().GetCluster(), "|"); len(parts) == 4 && parts[0] == "outbound" {
		return parts[3] + ":" + parts[1] + path
	}
	return vsName + ":" + portName(port) + path
}

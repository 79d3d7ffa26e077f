package xdsconfig

import "time"

// Tracing is a checked HttpConnectionManager.tracing: whether and how the
// HCM traces requests (Envoy's HTTP tracing as Istio configures it).
type Tracing struct {
	// Provider is where spans are exported; nil traces (propagates context,
	// decides sampling) without reporting spans.
	Provider *TraceProvider
	// ClientSampling, RandomSampling and OverallSampling are Envoy's
	// percentages (0-100): x-client-trace-id requests, requests without a
	// sampling decision, and the cap on both.
	ClientSampling, RandomSampling, OverallSampling float64
	// SpawnUpstreamSpan makes a child CLIENT span for the upstream request
	// (Istio sets it on gateways).
	SpawnUpstreamSpan bool
	// MaxPathTagLength bounds the http.url tag; 256 by default.
	MaxPathTagLength int
	// CustomTags are added to every span, in order.
	CustomTags []CustomTag
}

// Trace provider kinds.
const (
	TraceOpenTelemetry = "opentelemetry"
	TraceZipkin        = "zipkin"
)

// TraceProvider is the checked typed_config of tracing.provider.
type TraceProvider struct {
	// Kind is TraceOpenTelemetry or TraceZipkin.
	Kind string
	// Cluster is the cluster spans are sent to.
	Cluster string
	// GRPC is OTLP over gRPC (OpenTelemetry's grpc_service); otherwise
	// spans are POSTed over HTTP to Path.
	GRPC bool
	// Authority is the :authority / Host of export requests.
	Authority string
	// Path is the HTTP path (/v1/traces for OTLP, /api/v2/spans for Zipkin).
	Path string
	// Timeout bounds one export; 0 takes the exporter's default.
	Timeout time.Duration
	// ServiceName is the reporting service (OpenTelemetry service_name);
	// empty for Zipkin, which takes the node's cluster as Envoy does.
	ServiceName string
	// TraceID128 makes 128-bit trace ids (Zipkin trace_id_128bit; always for OpenTelemetry).
	TraceID128 bool
}

// CustomTag is one tracing custom tag.
type CustomTag struct {
	// Tag is the span attribute name.
	Tag string
	// Literal is the value of a literal tag.
	Literal string
	// Header is the request header of a request_header tag.
	Header string
	// Env is the environment variable of an environment tag.
	Env string
	// Default is used when the header or variable is absent.
	Default string
}

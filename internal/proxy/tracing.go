package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	b3prop "go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/zipkin"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// Tracing follows Envoy's HTTP tracing as Istio configures it through the
// HCM's tracing block: the context of an incoming request (W3C
// traceparent/tracestate, else B3 multi or single header) is continued, a
// request without one is sampled at random_sampling percent, and the decision
// travels with the trace (a non-sampled request still carries a traceparent
// with flags 00, so every hop agrees). Sidecar inbound requests get a SERVER
// span, outbound ones a CLIENT span; with spawn_upstream_span (gateways) a
// SERVER span has a CLIENT child for the upstream request. Spans are
// exported by OpenTelemetry's SDK through a bounded batch queue that drops
// rather than blocks.

// Batch export limits: a full queue drops spans, it never blocks a request.
const (
	traceQueueSize    = 4096
	traceBatchSize    = 512
	traceBatchTimeout = time.Second
	traceExportTimout = 10 * time.Second
)

// propagators read and write trace context: W3C first, then B3.
var (
	w3cPropagator = propagation.TraceContext{}
	b3Propagator  = b3prop.New(b3prop.WithInjectEncoding(b3prop.B3MultipleHeader))
	b3Single      = b3prop.New(b3prop.WithInjectEncoding(b3prop.B3SingleHeader))
)

// tracerKey identifies one export pipeline: equal provider configs of
// different HCMs and snapshots share it.
type tracerKey struct {
	kind, cluster, authority, path, service string
	grpc                                    bool
	timeout                                 time.Duration
}

// tracer is one export pipeline.
type tracer struct {
	tp *sdktrace.TracerProvider
	t  trace.Tracer
	// closers release the exporter's connections after the flush.
	closers []func()
}

// tracers owns the proxy's export pipelines, keyed by provider config.
type tracers struct {
	p    *Proxy
	mu   sync.Mutex
	byKy map[tracerKey]*tracer
}

func newTracers(p *Proxy) *tracers { return &tracers{p: p, byKy: map[tracerKey]*tracer{}} }

// forSnapshot returns the tracer of every HCM of s that reports spans, and
// shuts down (flushing) pipelines no HCM uses any more.
func (ts *tracers) forSnapshot(s *snapshot) map[*xdsconfig.HTTPConnectionManager]*tracer {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := map[*xdsconfig.HTTPConnectionManager]*tracer{}
	used := map[tracerKey]bool{}
	for hcm := range s.chains {
		if hcm == nil || hcm.Tracing == nil || hcm.Tracing.Provider == nil {
			continue
		}
		pr := hcm.Tracing.Provider
		k := tracerKey{kind: pr.Kind, cluster: pr.Cluster, authority: pr.Authority, path: pr.Path, service: pr.ServiceName, grpc: pr.GRPC, timeout: pr.Timeout}
		if k.service == "" {
			k.service = ts.p.cfg.Node.Node().GetCluster()
		}
		used[k] = true
		t := ts.byKy[k]
		if t == nil {
			var err error
			if t, err = ts.newTracer(k); err != nil {
				ts.p.log.Info("tracing provider not usable, spans dropped", slog.String("cluster", k.cluster), slog.String("error", err.Error()))
				continue
			}
			ts.byKy[k] = t
		}
		out[hcm] = t
	}
	for k, t := range ts.byKy {
		if !used[k] {
			delete(ts.byKy, k)
			go shutdownTracer(t)
		}
	}
	return out
}

// shutdown flushes and stops every pipeline.
func (ts *tracers) shutdown() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for k, t := range ts.byKy {
		delete(ts.byKy, k)
		shutdownTracer(t)
	}
}

func shutdownTracer(t *tracer) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if t.tp != nil {
		_ = t.tp.Shutdown(ctx)
	}
	for _, c := range t.closers {
		c()
	}
}

// dialCluster connects to a host of the named cluster of the current
// snapshot: exporters reach their collector through the cluster as Envoy's
// tracers do, following its endpoints as they change.
func (ts *tracers) dialCluster(ctx context.Context, name string) (net.Conn, error) {
	s := ts.p.snap.Load()
	if s == nil {
		return nil, errors.New("no configuration")
	}
	c := s.clusters[name]
	if c == nil {
		return nil, errors.New("cluster " + name + " not found")
	}
	h := c.pick(nil, "", false)
	if h == nil {
		return nil, errors.New("cluster " + name + " has no healthy endpoint")
	}
	return c.dialer.DialContext(ctx, "tcp", h.addr)
}

func (ts *tracers) newTracer(k tracerKey) (*tracer, error) {
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) { return ts.dialCluster(ctx, k.cluster) }
	transport := &http.Transport{DialContext: dial, MaxIdleConns: 2, IdleConnTimeout: 90 * time.Second}
	client := &http.Client{Transport: transport}
	closers := []func(){transport.CloseIdleConnections}
	timeout := k.timeout
	if timeout <= 0 {
		timeout = traceExportTimout
	}
	authority := k.authority
	if authority == "" {
		authority = k.cluster
	}
	var exp sdktrace.SpanExporter
	var err error
	ctx := context.Background()
	switch {
	case k.kind == xdsconfig.TraceZipkin:
		exp, err = zipkin.New("http://"+authority+k.path, zipkin.WithClient(client))
	case k.grpc:
		conn, cerr := grpc.NewClient("passthrough:///"+authority, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ts.dialCluster(ctx, k.cluster) }))
		if cerr != nil {
			return nil, cerr
		}
		closers = append(closers, func() { _ = conn.Close() })
		exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithGRPCConn(conn), otlptracegrpc.WithTimeout(timeout))
	default:
		exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(authority), otlptracehttp.WithURLPath(k.path),
			otlptracehttp.WithInsecure(), otlptracehttp.WithHTTPClient(client), otlptracehttp.WithTimeout(timeout))
	}
	if err != nil {
		return nil, err
	}
	res := resource.NewSchemaless(semconv.ServiceName(k.service))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(decisionSampler{}),
		sdktrace.WithBatcher(exp, sdktrace.WithMaxQueueSize(traceQueueSize), sdktrace.WithMaxExportBatchSize(traceBatchSize),
			sdktrace.WithBatchTimeout(traceBatchTimeout), sdktrace.WithExportTimeout(timeout)),
	)
	return &tracer{tp: tp, t: tp.Tracer("bowline"), closers: closers}, nil
}

// decisionSampler samples what the proxy decided (sampleKey in the
// context): the decision is Envoy's, made per request from the HCM's
// percentages and the incoming context, not the SDK's.
type decisionSampler struct{}

type sampleKey struct{}

func (decisionSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	psc := trace.SpanContextFromContext(p.ParentContext)
	if on, _ := p.ParentContext.Value(sampleKey{}).(bool); on {
		return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample, Tracestate: psc.TraceState()}
	}
	return sdktrace.SamplingResult{Decision: sdktrace.Drop, Tracestate: psc.TraceState()}
}

func (decisionSampler) Description() string { return "bowline-envoy-decision" }

// reqSpan is a request's tracing state in the exchange.
type reqSpan struct {
	cfg *xdsconfig.Tracing
	// span is the request's span; upstream its CLIENT child (spawn_upstream_span), or nil.
	span, upstream trace.Span
	// ctx carries the span whose context is injected upstream.
	ctx context.Context
	// b3Single is set when the request carried a single b3 header.
	b3Single bool
}

// startSpan begins the request's span (or, when not sampled, a span context
// that only propagates the decision).
func (p *Proxy) startSpan(x *exchange, cfg *xdsconfig.Tracing) {
	r := x.r
	carrier := traceCarrier(r.Header)
	ctx := w3cPropagator.Extract(context.Background(), carrier)
	if !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = b3Propagator.Extract(context.Background(), carrier)
	}
	parent := trace.SpanContextFromContext(ctx)
	var sampled bool
	switch {
	case carrier.Get("x-envoy-force-trace") != "":
		sampled = true
	case parent.IsValid():
		sampled = parent.IsSampled()
	case carrier.Get("x-client-trace-id") != "":
		sampled = samplePercent(cfg.ClientSampling)
	default:
		sampled = samplePercent(cfg.RandomSampling)
	}
	sampled = sampled && samplePercent(cfg.OverallSampling)
	t := x.snap.tracers[x.hcm]
	if t == nil {
		t = noopTracer
	}
	kind := trace.SpanKindClient
	if x.rec.inbound || cfg.SpawnUpstreamSpan {
		kind = trace.SpanKindServer
	}
	ctx = context.WithValue(ctx, sampleKey{}, sampled)
	rs := &reqSpan{cfg: cfg, b3Single: carrier.Get("b3") != ""}
	rs.ctx, rs.span = t.t.Start(ctx, "", trace.WithSpanKind(kind), trace.WithTimestamp(x.rec.start))
	if cfg.SpawnUpstreamSpan {
		rs.ctx, rs.upstream = t.t.Start(rs.ctx, "", trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(x.rec.start))
	}
	x.span = rs
}

// noopTracer propagates decisions for HCMs that trace without reporting.
var noopTracer = &tracer{t: sdktrace.NewTracerProvider(sdktrace.WithSampler(decisionSampler{})).Tracer("bowline")}

func samplePercent(pct float64) bool {
	if pct >= 100 {
		return true
	}
	return pct > 0 && sampled(uint32(pct*10_000))
}

// injectTrace writes the span context the upstream request continues: W3C
// traceparent/tracestate and B3 multi headers (and b3 when the request used it).
func (x *exchange) injectTrace(hdr http.Header) {
	if x.span == nil {
		return
	}
	c := traceCarrier(hdr)
	w3cPropagator.Inject(x.span.ctx, c)
	b3Propagator.Inject(x.span.ctx, c)
	if x.span.b3Single {
		b3Single.Inject(x.span.ctx, c)
	}
}

// endSpan tags the request's span(s) as Envoy does and ends them.
func (p *Proxy) endSpan(x *exchange) {
	rs, rec := x.span, x.rec
	x.span = nil
	if !rs.span.IsRecording() {
		return
	}
	op := ""
	if x.route != nil {
		op = x.route.Operation
	}
	if op == "" {
		op = rec.authority + x.r.URL.Path
	}
	url := "http://" + rec.authority + rec.path
	if n := rs.cfg.MaxPathTagLength; n > 0 && len(url) > n {
		url = url[:n]
	}
	flags := rec.flags.String()
	attrs := []attribute.KeyValue{
		attribute.String("component", "proxy"),
		attribute.String("node_id", p.cfg.Node.Node().GetId()),
		attribute.String("guid:x-request-id", rec.requestID),
		attribute.String("http.url", url),
		attribute.String("http.method", rec.method),
		attribute.String("http.protocol", rec.protocol),
		attribute.String("downstream_cluster", "-"),
		attribute.String("user_agent", headerOr(x.r.Header, "User-Agent", "-")),
		attribute.String("request_size", strconv.FormatInt(rec.bytesIn, 10)),
		attribute.String("response_size", strconv.FormatInt(rec.bytesOut, 10)),
		attribute.String("http.status_code", strconv.Itoa(rec.code)),
		attribute.String("response_flags", flags),
	}
	if x.info != nil && x.info.src.IsValid() {
		attrs = append(attrs, attribute.String("peer.address", x.info.src.Addr().String()))
	}
	if rec.upstreamCluster != "" {
		attrs = append(attrs, attribute.String("upstream_cluster", rec.upstreamCluster), attribute.String("upstream_cluster.name", rec.upstreamCluster))
	}
	if rec.upstreamHost != "" {
		attrs = append(attrs, attribute.String("upstream_address", rec.upstreamHost))
	}
	if rec.grpcStatus != "" {
		attrs = append(attrs, attribute.String("grpc.status", rec.grpcStatus))
	}
	for _, t := range rs.cfg.CustomTags {
		attrs = append(attrs, attribute.String(t.Tag, customTagValue(t, x.r.Header)))
	}
	end := rec.start.Add(rec.duration)
	for _, sp := range []trace.Span{rs.upstream, rs.span} {
		if sp == nil {
			continue
		}
		sp.SetName(op)
		sp.SetAttributes(attrs...)
		if rec.code >= 500 || rec.code == 0 {
			sp.SetAttributes(attribute.String("error", "true"))
			// The Zipkin exporter writes the status text as the error tag;
			// Envoy's Zipkin spans carry error=true.
			msg := ""
			if rs.cfg.Provider != nil && rs.cfg.Provider.Kind == xdsconfig.TraceZipkin {
				msg = "true"
			}
			sp.SetStatus(codes.Error, msg)
		}
		sp.End(trace.WithTimestamp(end))
	}
}

// traceCarrier is propagation.HeaderCarrier without the per-call cost of
// canonicalising the propagators' lower-case keys (net/http allocates the
// canonical form of each on every Get and Set): the keys the W3C and B3
// propagators and startSpan use map to constants.
type traceCarrier http.Header

var _ propagation.TextMapCarrier = traceCarrier(nil)

// traceKey is the canonical form of a propagation header name.
func traceKey(k string) string {
	switch k {
	case "traceparent":
		return "Traceparent"
	case "tracestate":
		return "Tracestate"
	case "b3":
		return "B3"
	case "x-b3-traceid":
		return "X-B3-Traceid"
	case "x-b3-spanid":
		return "X-B3-Spanid"
	case "x-b3-parentspanid":
		return "X-B3-Parentspanid"
	case "x-b3-sampled":
		return "X-B3-Sampled"
	case "x-b3-flags":
		return "X-B3-Flags"
	case "x-client-trace-id":
		return "X-Client-Trace-Id"
	case "x-envoy-force-trace":
		return "X-Envoy-Force-Trace"
	}
	return http.CanonicalHeaderKey(k)
}

func (c traceCarrier) Get(k string) string {
	if v := c[traceKey(k)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c traceCarrier) Set(k, v string) { c[traceKey(k)] = []string{v} }

func (c traceCarrier) Keys() []string { return propagation.HeaderCarrier(c).Keys() }

func headerOr(h http.Header, k, def string) string {
	if v := h.Get(k); v != "" {
		return v
	}
	return def
}

func customTagValue(t xdsconfig.CustomTag, h http.Header) string {
	switch {
	case t.Header != "":
		if v := h.Get(t.Header); v != "" {
			return v
		}
		return t.Default
	case t.Env != "":
		if v, ok := os.LookupEnv(t.Env); ok {
			return v
		}
		return t.Default
	}
	return t.Literal
}

package xds_test

import (
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	celfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
	"github.com/bowline-mesh/bowline/internal/xds"
)

const tracingMesh = `apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    defaultConfig: {tracing: {sampling: 50}}
    extensionProviders:
    - name: otel
      opentelemetry: {service: jaeger.local, port: 4317}
    - name: zipkin
      zipkin: {service: jaeger.local, port: 9411}
    defaultProviders: {tracing: [otel]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: jaeger, namespace: istio-system}
spec:
  hosts: [jaeger.local]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 4317, name: grpc, protocol: GRPC}, {number: 9411, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: details}
spec:
  hosts: [details.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.20}]
`

// hcmTracings returns the tracing block of every HCM of the proxy by listener name.
func hcmTracings(t *testing.T, r xds.Resources) map[string]*hcmv3.HttpConnectionManager_Tracing {
	t.Helper()
	out := map[string]*hcmv3.HttpConnectionManager_Tracing{}
	for _, res := range r.Listeners {
		l := res.(*listenerv3.Listener)
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				h := &hcmv3.HttpConnectionManager{}
				if f.GetTypedConfig().UnmarshalTo(h) == nil && h.GetStatPrefix() != "" {
					out[l.GetName()] = h.GetTracing()
				}
			}
		}
	}
	return out
}

func buildTracing(t *testing.T, yaml string) *model.Snapshot {
	t.Helper()
	res := config.Parse("t.yaml", []byte(yaml), config.ParseOptions{})
	if len(res.Problems) > 0 {
		t.Fatal(res.Problems)
	}
	return model.Build(res.Objects, registry.Build(res.Objects, nil), model.Options{})
}

func TestTracingConfig(t *testing.T) {
	p := &model.Proxy{ID: "sidecar~10.0.0.10~productpage-v1.default~default.svc.cluster.local", Type: model.SidecarProxy,
		Namespace: "default", WorkloadName: "productpage-v1", Labels: map[string]string{"app": "productpage", "version": "v1"},
		IPs: []string{"10.0.0.10"}, Inbound: []model.PortMapping{{Port: 9080, TargetPort: 19080}}}

	t.Run("no provider, no tracing", func(t *testing.T) {
		for name, tr := range hcmTracings(t, xds.Generate(buildTracing(t, ""), p)) {
			if tr != nil {
				t.Errorf("%s traces without a provider: %v", name, tr)
			}
		}
	})

	t.Run("default provider", func(t *testing.T) {
		r := xds.Generate(buildTracing(t, tracingMesh), p)
		trs := hcmTracings(t, r)
		for _, name := range []string{"inbound|9080", "0.0.0.0_9080"} {
			tr := trs[name]
			if tr == nil {
				t.Fatalf("%s has no tracing; listeners %v", name, trs)
			}
			if tr.GetRandomSampling().GetValue() != 50 || tr.GetClientSampling().GetValue() != 100 || tr.GetSpawnUpstreamSpan() != nil {
				t.Errorf("%s sampling %v", name, tr)
			}
			oc := &tracev3.OpenTelemetryConfig{}
			if err := tr.GetProvider().GetTypedConfig().UnmarshalTo(oc); err != nil || tr.GetProvider().GetName() != "envoy.tracers.opentelemetry" {
				t.Fatalf("%s provider %v: %v", name, tr.GetProvider(), err)
			}
			if oc.GetServiceName() != "productpage.default" || oc.GetGrpcService().GetEnvoyGrpc().GetClusterName() != "outbound|4317||jaeger.local" {
				t.Errorf("%s otel config %v", name, oc)
			}
			tags := map[string]string{}
			for _, ct := range tr.GetCustomTags() {
				tags[ct.GetTag()] = ct.GetLiteral().GetValue()
			}
			if tags["istio.canonical_service"] != "productpage" || tags["istio.namespace"] != "default" || tags["istio.canonical_revision"] != "v1" || tags["istio.mesh_id"] != "cluster.local" {
				t.Errorf("%s tags %v", name, tags)
			}
		}
		var op string
		for _, res := range r.Routes {
			rc := res.(*routev3.RouteConfiguration)
			for _, vh := range rc.GetVirtualHosts() {
				if vh.GetName() == "details.default.svc.cluster.local:9080" {
					op = vh.GetRoutes()[0].GetDecorator().GetOperation()
				}
			}
		}
		if op != "details.default.svc.cluster.local:9080/*" {
			t.Errorf("details route operation %q", op)
		}
	})

	t.Run("telemetry precedence", func(t *testing.T) {
		snap := buildTracing(t, tracingMesh+`---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing:
  - providers: [{name: zipkin}]
    randomSamplingPercentage: 10
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: ns, namespace: default}
spec:
  tracing:
  - randomSamplingPercentage: 0
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: pp, namespace: default}
spec:
  selector: {matchLabels: {app: productpage}}
  tracing:
  - match: {mode: SERVER}
    disableSpanReporting: true
`)
		trs := hcmTracings(t, xds.Generate(snap, p))
		if tr := trs["inbound|9080"]; tr != nil {
			t.Errorf("server side traces despite disableSpanReporting: %v", tr)
		}
		out := trs["0.0.0.0_9080"]
		if out == nil || out.GetProvider().GetName() != "envoy.tracers.zipkin" || out.GetRandomSampling().GetValue() != 0 {
			t.Fatalf("client side %v, want zipkin (mesh) at 0%% (namespace)", out)
		}
		zc := &tracev3.ZipkinConfig{}
		if err := out.GetProvider().GetTypedConfig().UnmarshalTo(zc); err != nil {
			t.Fatal(err)
		}
		if zc.GetCollectorService().GetHttpUri().GetUri() != "http://jaeger.local:9411/api/v2/spans" || zc.GetCollectorService().GetHttpUri().GetCluster() != "outbound|9411||jaeger.local" || !zc.GetTraceId_128Bit() {
			t.Errorf("zipkin config %v", zc)
		}
		// A gateway traces the client side and spawns the upstream span.
		gw := &model.Proxy{ID: "router~10.0.0.1~gw.istio-system~istio-system.svc.cluster.local", Type: model.Router, Namespace: "istio-system",
			Labels: map[string]string{"app": "istio-ingressgateway", "istio": "ingressgateway"}}
		snap = buildTracing(t, tracingMesh+`---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
`)
		gwTrs := hcmTracings(t, xds.Generate(snap, gw))
		if len(gwTrs) == 0 {
			t.Fatal("the gateway has no HTTP listener")
		}
		for name, tr := range gwTrs {
			if tr == nil || !tr.GetSpawnUpstreamSpan().GetValue() {
				t.Errorf("gateway listener %s tracing %v, want spawn_upstream_span", name, tr)
			}
		}
	})
}

// hcmAccessLogs returns the access_log of every HCM of the proxy by listener name.
func hcmAccessLogs(t *testing.T, r xds.Resources) map[string][]*accesslogv3.AccessLog {
	t.Helper()
	out := map[string][]*accesslogv3.AccessLog{}
	for _, res := range r.Listeners {
		l := res.(*listenerv3.Listener)
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				h := &hcmv3.HttpConnectionManager{}
				if f.GetTypedConfig().UnmarshalTo(h) == nil && h.GetStatPrefix() != "" {
					out[l.GetName()] = h.GetAccessLog()
				}
			}
		}
	}
	return out
}

func TestAccessLogConfig(t *testing.T) {
	p := &model.Proxy{ID: "sidecar~10.0.0.10~productpage-v1.default~default.svc.cluster.local", Type: model.SidecarProxy,
		Namespace: "default", WorkloadName: "productpage-v1", Labels: map[string]string{"app": "productpage"},
		IPs: []string{"10.0.0.10"}, Inbound: []model.PortMapping{{Port: 9080, TargetPort: 19080}}}
	path := func(al *accesslogv3.AccessLog) string {
		fl := &filev3.FileAccessLog{}
		if err := al.GetTypedConfig().UnmarshalTo(fl); err != nil {
			t.Fatal(err)
		}
		return fl.GetPath()
	}
	filter := func(al *accesslogv3.AccessLog) string {
		cf := &celfilterv3.ExpressionFilter{}
		_ = al.GetFilter().GetExtensionFilter().GetTypedConfig().UnmarshalTo(cf)
		return cf.GetExpression()
	}
	if logs := hcmAccessLogs(t, xds.Generate(buildTracing(t, tracingMesh), p)); len(logs["inbound|9080"]) != 0 {
		t.Errorf("access_log without any config: %v", logs)
	}
	meshFile := `apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    accessLogFile: /dev/stdout
    accessLogEncoding: JSON
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: details}
spec:
  hosts: [details.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.20}]
`
	logs := hcmAccessLogs(t, xds.Generate(buildTracing(t, meshFile), p))
	if in := logs["inbound|9080"]; len(in) != 1 || path(in[0]) != "/dev/stdout" {
		t.Errorf("MeshConfig accessLogFile: inbound access_log %v", in)
	}
	logs = hcmAccessLogs(t, xds.Generate(buildTracing(t, meshFile+`---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  accessLogging:
  - providers: [{name: envoy}]
    filter: {expression: "response.code >= 400"}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: pp, namespace: default}
spec:
  selector: {matchLabels: {app: productpage}}
  accessLogging:
  - match: {mode: CLIENT}
    disabled: true
`), p))
	if in := logs["inbound|9080"]; len(in) != 1 || path(in[0]) != "/dev/stdout" || filter(in[0]) != "response.code >= 400" {
		t.Errorf("server side %v, want the mesh Telemetry's filtered log", in)
	}
	if out := logs["0.0.0.0_9080"]; len(out) != 1 || path(out[0]) != "/dev/null" {
		t.Errorf("client side %v, want /dev/null (disabled for CLIENT)", out)
	}
}

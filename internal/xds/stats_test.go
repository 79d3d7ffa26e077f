package xds_test

import (
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	stats "istio.io/api/envoy/extensions/stats"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
	"github.com/bowline-mesh/bowline/internal/xds"
)

// hcmStats returns, by listener name, the istio.stats config of every HCM
// ("" when it has none) and whether the filter sits just before the router.
func hcmStats(t *testing.T, r xds.Resources) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, res := range r.Listeners {
		l := res.(*listenerv3.Listener)
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				h := &hcmv3.HttpConnectionManager{}
				if f.GetTypedConfig().UnmarshalTo(h) != nil || h.GetStatPrefix() == "" {
					continue
				}
				out[l.GetName()] = ""
				fs := h.GetHttpFilters()
				for i, hf := range fs {
					if hf.GetName() != "istio.stats" {
						continue
					}
					pc := &stats.PluginConfig{}
					if err := hf.GetTypedConfig().UnmarshalTo(pc); err != nil {
						t.Fatal(err)
					}
					if i != len(fs)-2 {
						t.Errorf("%s: istio.stats at %d of %d filters, want just before the router", l.GetName(), i, len(fs))
					}
					b, _ := protojson.Marshal(pc)
					out[l.GetName()] = strings.ReplaceAll(string(b), " ", "")
				}
			}
		}
	}
	return out
}

// TestTelemetryMetrics: the Telemetry API's metrics reach the HCMs as
// istiod sends them, an istio.stats filter with stats.PluginConfig: mesh
// overrides then the workload's, by match.mode; no prometheus provider
// drops every metric; with no Telemetry metrics there is no filter.
func TestTelemetryMetrics(t *testing.T) {
	p := &model.Proxy{ID: "sidecar~10.0.0.10~productpage-v1.default~default.svc.cluster.local", Type: model.SidecarProxy,
		Namespace: "default", WorkloadName: "productpage-v1", Labels: map[string]string{"app": "productpage", "version": "v1"},
		IPs: []string{"10.0.0.10"}, Inbound: []model.PortMapping{{Port: 9080, TargetPort: 19080}}}
	const inbound, outbound = "inbound|9080", "0.0.0.0_9080"
	mesh := `---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - match: {metric: REQUEST_COUNT}
      tagOverrides:
        request_host: {value: request.host}
    - match: {metric: REQUEST_SIZE, mode: SERVER}
      disabled: true
`
	workload := `---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: productpage, namespace: default}
spec:
  selector: {matchLabels: {app: productpage}}
  metrics:
  - overrides:
    - match: {mode: CLIENT}
      tagOverrides:
        source_principal: {operation: REMOVE}
`
	cases := []struct {
		name              string
		yaml              string
		inbound, outbound string
	}{
		{"none", tracingMesh, "", ""},
		{"mesh overrides", tracingMesh + mesh,
			`{"metrics":[{"dimensions":{"request_host":"request.host"},"name":"requests_total"},{"name":"request_bytes","drop":true}]}`,
			`{"metrics":[{"dimensions":{"request_host":"request.host"},"name":"requests_total"}]}`},
		{"mesh then workload", tracingMesh + mesh + workload,
			`{"metrics":[{"dimensions":{"request_host":"request.host"},"name":"requests_total"},{"name":"request_bytes","drop":true}]}`,
			`{"metrics":[{"dimensions":{"request_host":"request.host"},"name":"requests_total"},{"tagsToRemove":["source_principal"]}]}`},
		{"no prometheus provider", tracingMesh + `---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  metrics:
  - providers: [{name: otel}]
`, `{"metrics":[{"drop":true}]}`, `{"metrics":[{"drop":true}]}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := hcmStats(t, xds.Generate(buildTracing(t, c.yaml), p))
			if got[inbound] != c.inbound {
				t.Errorf("inbound istio.stats:\n got %s\nwant %s", got[inbound], c.inbound)
			}
			if got[outbound] != c.outbound {
				t.Errorf("outbound istio.stats:\n got %s\nwant %s", got[outbound], c.outbound)
			}
		})
	}
}

// tcpStats returns, by listener name, the istio.stats network filter's
// config just before each tcp_proxy ("" when there is none).
func tcpStats(t *testing.T, r xds.Resources) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, res := range r.Listeners {
		l := res.(*listenerv3.Listener)
		for _, fc := range l.GetFilterChains() {
			fs := fc.GetFilters()
			if len(fs) == 0 || fs[len(fs)-1].GetName() != "envoy.filters.network.tcp_proxy" {
				continue
			}
			out[l.GetName()] = ""
			if len(fs) > 1 && fs[len(fs)-2].GetName() == "istio.stats" {
				pc := &stats.PluginConfig{}
				if err := fs[len(fs)-2].GetTypedConfig().UnmarshalTo(pc); err != nil {
					t.Fatal(err)
				}
				b, _ := protojson.Marshal(pc)
				out[l.GetName()] = strings.ReplaceAll(string(b), " ", "")
			}
		}
	}
	return out
}

// TestTelemetryTCPMetrics: overrides of the TCP metrics reach TCP filter
// chains as istiod sends them, an istio.stats network filter before the
// tcp_proxy with the direction's stats.PluginConfig; inbound (SERVER) and
// outbound (CLIENT) each get their own, and default metrics add no filter.
func TestTelemetryTCPMetrics(t *testing.T) {
	db := `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.default.svc.cluster.local]
  addresses: [240.0.0.5]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 3306, name: tcp-mysql, protocol: TCP}]
  workloadSelector: {labels: {app: db}}
`
	telemetry := `---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  metrics:
  - overrides:
    - match: {metric: TCP_OPENED_CONNECTIONS, mode: SERVER}
      tagOverrides:
        mtls: {value: string(connection.mtls)}
    - match: {metric: TCP_SENT_BYTES, mode: CLIENT}
      disabled: true
`
	p := &model.Proxy{ID: "sidecar~10.0.0.30~db-v1.default~default.svc.cluster.local", Type: model.SidecarProxy,
		Namespace: "default", WorkloadName: "db-v1", Labels: map[string]string{"app": "db"},
		IPs: []string{"10.0.0.30"}, Inbound: []model.PortMapping{{Port: 3306, TargetPort: 13306}}}
	const inbound, outbound = "inbound|3306", "240.0.0.5_3306"
	for _, c := range []struct {
		name, yaml, inbound, outbound string
	}{
		{"default metrics", tracingMesh + db, "", ""},
		{"overrides", tracingMesh + db + telemetry,
			`{"metrics":[{"dimensions":{"mtls":"string(connection.mtls)"},"name":"tcp_connections_opened_total"}]}`,
			`{"metrics":[{"name":"tcp_sent_bytes_total","drop":true}]}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := config.Parse("t.yaml", []byte(c.yaml), config.ParseOptions{})
			if len(res.Problems) > 0 {
				t.Fatal(res.Problems)
			}
			ws := []registry.Workload{{Name: "db-v1", Namespace: "default", Address: "10.0.0.30", Labels: p.Labels,
				Ports: map[string]uint32{"tcp-mysql": 3306}, Healthy: true}}
			snap := model.Build(res.Objects, registry.Build(res.Objects, ws), model.Options{})
			got := tcpStats(t, xds.Generate(snap, p))
			if v, ok := got[inbound]; !ok || v != c.inbound {
				t.Errorf("inbound TCP istio.stats (listener there: %v):\n got %s\nwant %s\nlisteners: %v", ok, v, c.inbound, got)
			}
			if v, ok := got[outbound]; !ok || v != c.outbound {
				t.Errorf("outbound TCP istio.stats (listener there: %v):\n got %s\nwant %s\nlisteners: %v", ok, v, c.outbound, got)
			}
		})
	}
}

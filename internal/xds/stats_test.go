package xds_test

import (
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	stats "istio.io/api/envoy/extensions/stats"

	"github.com/bowline-mesh/bowline/internal/model"
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

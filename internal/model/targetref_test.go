package model_test

import (
	"testing"

	"github.com/bowline-mesh/bowline/internal/model"
)

// TestTelemetryTargetRefs: a Telemetry's targetRefs attach it, at the
// workload level, to the gateways that serve the Gateway API Gateway (or
// GatewayClass) it names, as in Istio; never to sidecars, and a Service
// target (a waypoint's) to no proxy Bowline runs.
func TestTelemetryTargetRefs(t *testing.T) {
	snap := build(t, `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: bookinfo, namespace: default}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: 8080, protocol: HTTP}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing: [{randomSamplingPercentage: 1}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: bookinfo-gateway, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: bookinfo}]
  tracing: [{randomSamplingPercentage: 50}]
  metrics:
  - overrides: [{match: {metric: REQUEST_COUNT}, tagOverrides: {request_host: {value: request.host}}}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: class, namespace: istio-system}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: GatewayClass, name: istio}]
  tracing: [{randomSamplingPercentage: 25}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: reviews-waypoint, namespace: default}
spec:
  targetRefs: [{kind: Service, group: "", name: reviews}]
  tracing: [{randomSamplingPercentage: 75}]
`)
	ingress := &model.Proxy{Type: model.Router, Namespace: "istio-system", WorkloadName: "istio-ingressgateway",
		Labels: map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"}}
	for _, tc := range []struct {
		name     string
		p        *model.Proxy
		sampling float64
		override bool
	}{
		// The Gateway's Telemetry is the most specific level for the
		// ingress gateway serving it (the class one is only the next).
		{"ingress gateway serving default/bookinfo", ingress, 50, true},
		{"a pod of Gateway default/bookinfo", &model.Proxy{Type: model.Router, Namespace: "default",
			Labels: map[string]string{"gateway.networking.k8s.io/gateway-name": "bookinfo"}}, 50, true},
		{"a pod of another Gateway of class istio", &model.Proxy{Type: model.Router, Namespace: "prod",
			Labels: map[string]string{"gateway.networking.k8s.io/gateway-name": "other", "gateway.networking.k8s.io/gateway-class-name": "istio"}}, 25, false},
		{"a router serving no Gateway API Gateway", &model.Proxy{Type: model.Router, Namespace: "istio-system",
			Labels: map[string]string{"istio": "egressgateway"}}, 1, false},
		{"a sidecar named like the Service target", &model.Proxy{Type: model.SidecarProxy, Namespace: "default",
			Labels: map[string]string{"app": "reviews", "gateway.networking.k8s.io/gateway-name": "bookinfo"}}, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := snap.Tracing(tc.p).Client.Sampling; got != tc.sampling {
				t.Errorf("sampling %v, want %v", got, tc.sampling)
			}
			ovs := snap.Metrics(tc.p).Client.Overrides
			if got := len(ovs) == 1 && ovs[0].Upsert["request_host"] == "request.host"; got != tc.override {
				t.Errorf("metric overrides %+v, want the Gateway's: %v", ovs, tc.override)
			}
		})
	}
}

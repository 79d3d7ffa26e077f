package analysis

import "testing"

func TestMeshProviders(t *testing.T) {
	runCases(t, []testCase{
		{name: "provider services known and unknown", yaml: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: jaeger
  namespace: istio-system
spec:
  hosts: [jaeger.local]
  ports: [{number: 4317, name: grpc-otlp, protocol: GRPC}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
data:
  mesh: |
    extensionProviders:
    - name: otel
      opentelemetry: {service: jaeger.local, port: 4317}
    - name: zipkin
      zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: mesh-default
  namespace: istio-system
spec:
  tracing:
  - providers:
    - name: otel
  accessLogging:
  - providers:
    - name: elastic
`, want: []string{
			`Error [IST0101] (ConfigMap istio-system/istio test.yaml:22) Referenced host not found: "zipkin.istio-system.svc.cluster.local"`,
			`Error [IST0101] (Telemetry istio-system/mesh-default test.yaml:36) Referenced extension provider not found: "elastic"`,
		}},
	}, meshProvidersAnalyzer{})
}

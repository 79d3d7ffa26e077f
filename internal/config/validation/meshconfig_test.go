package validation

import "testing"

// meshDoc is the ConfigMap istio-system/istio whose mesh text starts on line 7.
func meshDoc(body string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: istio\n  namespace: istio-system\ndata:\n  mesh: |\n" + body
}

func TestMeshConfigProblems(t *testing.T) {
	secRunCases(t, "mesh.yaml", []secCase{
		{name: "valid", doc: meshDoc(`    extensionProviders:
    - name: otel
      opentelemetry: {service: otel.observability.svc.cluster.local, port: 4317}
    - name: zipkin
      zipkin: {service: observability/zipkin.local, port: 9411}
    defaultProviders:
      tracing: [otel]
      metrics: [prometheus]
`)},
		{name: "providers", doc: meshDoc(`    extensionProviders:
    - name: otel
      opentelemetry: {service: "", port: 0}
    - name: otel
      zipkin: {service: "bad_host", port: 9411, path: api/v2/spans}
    - name: dd
      datadog: {service: dd.local, port: 8126}
    - name: none
    defaultProviders:
      tracing: [jaeger]
`), want: []string{
			"mesh.yaml:10: ConfigMap istio-system/istio: data.mesh.extensionProviders[0].opentelemetry.service: required",
			"mesh.yaml:10: ConfigMap istio-system/istio: data.mesh.extensionProviders[0].opentelemetry.port: must be between 1 and 65535, got 0",
			"mesh.yaml:11: ConfigMap istio-system/istio: data.mesh.extensionProviders[1].name: duplicate extension provider name \"otel\"",
			"mesh.yaml:12: ConfigMap istio-system/istio: data.mesh.extensionProviders[1].zipkin.service: domain name \"bad_host\" is invalid: label \"bad_host\" is not a DNS-1123 label",
			"mesh.yaml:12: ConfigMap istio-system/istio: data.mesh.extensionProviders[1].zipkin.path: must start with '/'",
			"mesh.yaml:14: warning: ConfigMap istio-system/istio: data.mesh.extensionProviders[2].datadog: the datadog provider is not implemented by Bowline; it is ignored",
			"mesh.yaml:15: ConfigMap istio-system/istio: data.mesh.extensionProviders[3]: one provider kind is required (opentelemetry, zipkin, envoyFileAccessLog, prometheus, envoyExtAuthzHttp, envoyExtAuthzGrpc, ...)",
			"mesh.yaml:17: ConfigMap istio-system/istio: data.mesh.defaultProviders.tracing[0]: unknown extension provider \"jaeger\" (defined: otel, otel, dd, none, prometheus, envoy)",
		}},
		{name: "sampling and names", doc: meshDoc(`    defaultConfig:
      tracing:
        sampling: 101
    trustDomain: "not a domain"
    rootNamespace: Istio_System
`), want: []string{
			"mesh.yaml:10: ConfigMap istio-system/istio: data.mesh.defaultConfig.tracing.sampling: must be between 0 and 100, got 101",
			"mesh.yaml:11: ConfigMap istio-system/istio: data.mesh.trustDomain: domain name \"not a domain\" is invalid: label \"not a domain\" is not a DNS-1123 label",
			"mesh.yaml:12: ConfigMap istio-system/istio: data.mesh.rootNamespace: \"Istio_System\" is not a valid namespace name",
		}},
	})
}

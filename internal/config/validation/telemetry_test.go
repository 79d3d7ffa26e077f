package validation

import "testing"

// telDoc is a Telemetry istio-system/mesh-default whose spec body starts on line 7.
func telDoc(body string) string {
	return "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata:\n  name: mesh-default\n  namespace: istio-system\nspec:\n" + body
}

func TestTelemetryProblems(t *testing.T) {
	secRunCases(t, "telemetry.yaml", []secCase{
		{name: "sampling out of range", doc: telDoc(`
  tracing:
  - randomSamplingPercentage: 150
  - randomSamplingPercentage: -1
`), want: []string{
			"telemetry.yaml:8: warning: Telemetry istio-system/mesh-default: spec.tracing: only one tracing configuration is supported; 2 are set",
			"telemetry.yaml:9: Telemetry istio-system/mesh-default: spec.tracing[0].randomSamplingPercentage: must be between 0 and 100, got 150",
			"telemetry.yaml:10: Telemetry istio-system/mesh-default: spec.tracing[1].randomSamplingPercentage: must be between 0 and 100, got -1",
		}},
		{name: "providers", doc: telDoc(`
  tracing:
  - providers:
    - name: zipkin
    - name: ""
  accessLogging:
  - providers:
    - {}
`), want: []string{
			"telemetry.yaml:9: warning: Telemetry istio-system/mesh-default: spec.tracing[0].providers: only one tracing provider is supported; 2 are set",
			"telemetry.yaml:11: Telemetry istio-system/mesh-default: spec.tracing[0].providers[1].name: required",
			"telemetry.yaml:14: Telemetry istio-system/mesh-default: spec.accessLogging[0].providers[0].name: required",
		}},
		{name: "custom tags", doc: telDoc(`
  tracing:
  - customTags:
      literal:
        literal:
          value: ""
      header:
        header:
          name: ""
      env:
        environment:
          name: ""
      nothing: {}
`), want: []string{
			"telemetry.yaml:18: Telemetry istio-system/mesh-default: spec.tracing[0].customTags[env].environment.name: required",
			"telemetry.yaml:15: Telemetry istio-system/mesh-default: spec.tracing[0].customTags[header].header.name: required",
			"telemetry.yaml:12: Telemetry istio-system/mesh-default: spec.tracing[0].customTags[literal].literal.value: required",
			"telemetry.yaml:19: warning: Telemetry istio-system/mesh-default: spec.tracing[0].customTags[nothing]: tag \"nothing\" sets none of literal, header, environment or formatter and adds nothing",
		}},
		{name: "tag overrides", doc: telDoc(`
  metrics:
  - overrides:
    - match:
        customMetric: ""
      tagOverrides:
        request_host:
          operation: UPSERT
        response_code:
          operation: REMOVE
          value: "200"
        "bad-name":
          value: "x"
    reportingInterval: 0s
`), want: []string{
			"telemetry.yaml:20: Telemetry istio-system/mesh-default: spec.metrics[0].reportingInterval: duration 0s must be at least 1ms",
			"telemetry.yaml:11: Telemetry istio-system/mesh-default: spec.metrics[0].overrides[0].match.customMetric: must not be empty",
			"telemetry.yaml:18: warning: Telemetry istio-system/mesh-default: spec.metrics[0].overrides[0].tagOverrides[bad-name]: tag \"bad-name\" is not a valid Prometheus label name (letters, digits and '_', not starting with a digit)",
			"telemetry.yaml:19: Telemetry istio-system/mesh-default: spec.metrics[0].overrides[0].tagOverrides[bad-name].value: invalid CEL expression \"x\": undeclared reference to 'x' (column 1)",
			"telemetry.yaml:13: Telemetry istio-system/mesh-default: spec.metrics[0].overrides[0].tagOverrides[request_host].value: required when operation is UPSERT",
			"telemetry.yaml:17: Telemetry istio-system/mesh-default: spec.metrics[0].overrides[0].tagOverrides[response_code].value: must not be set when operation is REMOVE",
		}},
		{name: "access log filters", doc: telDoc(`
  accessLogging:
  - filter:
      expression: ""
  - filter:
      expression: "response.code >= 400 && (request.host == 'a'"
  - filter:
      expression: "response.code >="
  - filter:
      expression: "request.headers['x-debug] == 'true'"
  - filter:
      expression: "response.code >= 400 && respnse.flags == 0"
  - filter:
      expression: "response.code >= 400 && request.headers['x-debug'] == 'true'"
`), want: []string{
			"telemetry.yaml:10: Telemetry istio-system/mesh-default: spec.accessLogging[0].filter.expression: filter expression must not be empty",
			"telemetry.yaml:12: Telemetry istio-system/mesh-default: spec.accessLogging[1].filter.expression: invalid CEL expression \"response.code >= 400 && (request.host == 'a'\": unclosed '('",
			"telemetry.yaml:14: Telemetry istio-system/mesh-default: spec.accessLogging[2].filter.expression: invalid CEL expression \"response.code >=\": ends with \">=\"",
			"telemetry.yaml:16: Telemetry istio-system/mesh-default: spec.accessLogging[3].filter.expression: invalid CEL expression \"request.headers['x-debug] == 'true'\": unterminated string",
			"telemetry.yaml:18: Telemetry istio-system/mesh-default: spec.accessLogging[4].filter.expression: invalid CEL expression \"response.code >= 400 && respnse.flags == 0\": undeclared reference to 'respnse' (did you mean 'response'?) (column 25)",
		}},
		{name: "selector and targetRefs", doc: telDoc(`
  selector:
    matchLabels:
      app: reviews
  targetRefs:
  - kind: Service
    name: reviews
`), want: []string{
			"telemetry.yaml:11: Telemetry istio-system/mesh-default: spec.targetRefs: only one of selector, targetRef and targetRefs may be set",
		}},
	})
}

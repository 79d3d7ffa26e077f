package telemetry

import (
	"fmt"

	"cel.dev/cel-go/cel"
)

// IstioMetrics are the standard metrics' names as Istio's stats filter
// (stats.PluginConfig) and the Telemetry API's overrides name them, by the
// Telemetry API's MetricSelector.IstioMetric enum names.
var IstioMetrics = map[string]string{
	"REQUEST_COUNT":          "requests_total",
	"REQUEST_DURATION":       "request_duration_milliseconds",
	"REQUEST_SIZE":           "request_bytes",
	"RESPONSE_SIZE":          "response_bytes",
	"TCP_OPENED_CONNECTIONS": "tcp_connections_opened_total",
	"TCP_CLOSED_CONNECTIONS": "tcp_connections_closed_total",
	"TCP_SENT_BYTES":         "tcp_sent_bytes_total",
	"TCP_RECEIVED_BYTES":     "tcp_received_bytes_total",
	"GRPC_REQUEST_MESSAGES":  "request_messages_total",
	"GRPC_RESPONSE_MESSAGES": "response_messages_total",
}

// CompileMetricTag compiles a Telemetry tagOverrides value (CEL over Envoy's
// attributes: request.host, request.headers['x-user'], string(response.code),
// source.address, ...) into a program evaluated per request with the same
// attribute maps as access log filters. The expression must give a string
// (wrap numbers in string()).
func CompileMetricTag(expr string) (cel.Program, error) {
	if accessLogEnvErr != nil {
		return nil, accessLogEnvErr
	}
	ast, iss := accessLogEnv.Compile(expr)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if t := ast.OutputType(); !t.IsExactType(cel.StringType) && !t.IsExactType(cel.DynType) {
		return nil, fmt.Errorf("the expression is of type %s, want string (wrap it in string())", t)
	}
	return accessLogEnv.Program(ast)
}

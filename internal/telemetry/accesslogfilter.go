// Package telemetry owns the observability vocabulary shared by the control
// plane and the proxy: the CEL environment of access log filters (Envoy's
// request.*, response.*, connection.*, source.*, destination.*, upstream.*
// attributes). It imports nothing of Bowline's.
package telemetry

import (
	"fmt"

	"cel.dev/cel-go/cel"
)

// accessLogEnv declares Envoy's attributes as CEL maps.
var accessLogEnv, accessLogEnvErr = cel.NewEnv(
	cel.Variable("request", cel.MapType(cel.StringType, cel.DynType)),
	cel.Variable("response", cel.MapType(cel.StringType, cel.DynType)),
	cel.Variable("connection", cel.MapType(cel.StringType, cel.DynType)),
	cel.Variable("source", cel.MapType(cel.StringType, cel.DynType)),
	cel.Variable("destination", cel.MapType(cel.StringType, cel.DynType)),
	cel.Variable("upstream", cel.MapType(cel.StringType, cel.DynType)),
)

// CompileAccessLogFilter compiles a Telemetry accessLogging filter
// expression (CEL over Envoy's attributes, "response.code >= 400") into a
// program evaluated per request with the attribute maps.
func CompileAccessLogFilter(expr string) (cel.Program, error) {
	if accessLogEnvErr != nil {
		return nil, accessLogEnvErr
	}
	ast, iss := accessLogEnv.Compile(expr)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) && !t.IsExactType(cel.DynType) {
		return nil, fmt.Errorf("the expression is of type %s, want bool", t)
	}
	return accessLogEnv.Program(ast)
}

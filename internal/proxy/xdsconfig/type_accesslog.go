package xdsconfig

import "cel.dev/cel-go/cel"

// AccessLog is one checked HCM access_log entry: Envoy's file access logger
// (envoy.access_loggers.file) with an optional CEL filter, the form istiod
// gives the Telemetry API's accessLogging and MeshConfig's accessLogFile.
type AccessLog struct {
	// Path is the file written; "/dev/stdout" is the proxy's access log
	// stream and "/dev/null" turns logging off.
	Path string
	// JSON selects JSON lines (json_format), else text lines.
	JSON bool
	// Filter is the compiled CEL filter (extension_filter
	// envoy.access_loggers.extension_filters.cel), nil to log every request.
	Filter cel.Program
	// Expression is the filter's source.
	Expression string
	// Format is a log_format other than Istio's defaults, rendered per
	// request; nil writes Bowline's standard lines (JSON or text).
	Format *LogFormat
}

package xds

import (
	"strings"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	celfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/bowline-mesh/bowline/internal/model"
)

// Envoy names of the access logger and its CEL filter.
const (
	accessLoggerFile = "envoy.access_loggers.file"
	accessLogCEL     = "envoy.access_loggers.extension_filters.cel"
)

// istioJSONFormat is the JSON access log Istio writes with
// accessLogEncoding JSON (a subset of its default fields).
var istioJSONFormat = map[string]any{
	"start_time": "%START_TIME%", "method": "%REQ(:METHOD)%", "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
	"protocol": "%PROTOCOL%", "response_code": "%RESPONSE_CODE%", "response_flags": "%RESPONSE_FLAGS%",
	"bytes_received": "%BYTES_RECEIVED%", "bytes_sent": "%BYTES_SENT%", "duration": "%DURATION%",
	"upstream_host": "%UPSTREAM_HOST%", "upstream_cluster": "%UPSTREAM_CLUSTER%", "x_request_id": "%REQ(X-REQUEST-ID)%",
	"authority": "%REQ(:AUTHORITY)%",
}

// istioTextFormat is Istio's default text access log format.
const istioTextFormat = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% " +
	"%BYTES_RECEIVED% %BYTES_SENT% %DURATION% \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER%\n"

// hcmAccessLogs is the HCM access_log for one traffic direction of the
// proxy, from the Telemetry API and MeshConfig (model.AccessLogging): Envoy
// file loggers with Istio's formats and a CEL filter. nil when nothing
// configures access logging for this direction.
func (g *gen) hcmAccessLogs(outbound bool) []*accesslogv3.AccessLog {
	if g.grpc {
		return nil
	}
	if g.accessLogs == nil {
		c := g.snap.AccessLogging(g.proxy)
		g.accessLogs = &c
	}
	logs := g.accessLogs.Server
	if outbound || g.proxy.Type == model.Router {
		logs = g.accessLogs.Client
	}
	var out []*accesslogv3.AccessLog
	for _, l := range logs {
		fl := &filev3.FileAccessLog{Path: l.Path}
		switch {
		case len(l.Labels) > 0:
			labels := make(map[string]any, len(l.Labels))
			for k, v := range l.Labels {
				labels[k] = v
			}
			if js, err := structpb.NewStruct(labels); err == nil {
				fl.AccessLogFormat = &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
					Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: js}}}
			}
		case l.Text != "":
			text := l.Text
			if !strings.HasSuffix(text, "\n") { // as istiod ends a text format
				text += "\n"
			}
			fl.AccessLogFormat = &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
				Format: &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
					Specifier: &corev3.DataSource_InlineString{InlineString: text}}}}}
		case l.JSON:
			js, err := structpb.NewStruct(istioJSONFormat)
			if err == nil {
				fl.AccessLogFormat = &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
					Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: js}}}
			}
		default:
			fl.AccessLogFormat = &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
				Format: &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
					Specifier: &corev3.DataSource_InlineString{InlineString: istioTextFormat}}}}}
		}
		al := &accesslogv3.AccessLog{Name: accessLoggerFile, ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: toAny(fl)}}
		if l.Filter != "" {
			al.Filter = &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ExtensionFilter{
				ExtensionFilter: &accesslogv3.ExtensionFilter{Name: accessLogCEL, ConfigType: &accesslogv3.ExtensionFilter_TypedConfig{
					TypedConfig: toAny(&celfilterv3.ExpressionFilter{Expression: l.Filter})}}}}
		}
		out = append(out, al)
	}
	return out
}

package xdsconfig

import (
	"fmt"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/bowline-mesh/bowline/internal/telemetry"
)

// LogFormat is an access log's substitution format (Envoy's
// SubstitutionFormatString): text with command operators, or JSON whose
// values are such texts.
type LogFormat struct {
	// Text is the parsed text format (text_format_source).
	Text []FormatPart
	// JSON are the keys of a json_format, sorted, and their values.
	JSON []JSONField
}

// JSONField is one key of a JSON access log format.
type JSONField struct {
	Key   string
	Value []FormatPart
}

// FormatPart is a literal or one command operator (telemetry.FormatPart).
type FormatPart = telemetry.FormatPart

// Istio's default access log formats: an HCM that asks for exactly these is
// logged with Bowline's built-in lines, which carry the same fields.
const istioDefaultText = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% " +
	"%BYTES_RECEIVED% %BYTES_SENT% %DURATION% \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER%\n"

var istioDefaultJSONKeys = []string{"authority", "bytes_received", "bytes_sent", "duration", "method", "path", "protocol",
	"response_code", "response_flags", "start_time", "upstream_cluster", "upstream_host", "x_request_id"}

// unmarshalLogFormat checks a file logger's log_format. It returns nil for
// Istio's default formats (logged by Bowline's built-in lines).
func unmarshalLogFormat(f *corev3.SubstitutionFormatString, path string) (*LogFormat, error) {
	if err := checkFields(f, path, "text_format_source", "json_format", "omit_empty_values", "content_type"); err != nil {
		return nil, err
	}
	switch {
	case f.GetTextFormatSource() != nil:
		src := f.GetTextFormatSource()
		if err := checkFields(src, path+".text_format_source", "inline_string"); err != nil {
			return nil, err
		}
		text := src.GetInlineString()
		if text == istioDefaultText {
			return nil, nil
		}
		parts, err := telemetry.ParseLogFormat(text)
		if err != nil {
			return nil, fmt.Errorf("field %s.text_format_source.inline_string: %q: %v", path, text, err)
		}
		return &LogFormat{Text: parts}, nil
	case f.GetJsonFormat() != nil:
		fields := f.GetJsonFormat().GetFields()
		keys := make([]string, 0, len(fields))
		for k := range fields {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if slices.Equal(keys, istioDefaultJSONKeys) {
			return nil, nil
		}
		out := &LogFormat{JSON: []JSONField{}}
		for _, k := range keys {
			sv, ok := fields[k].GetKind().(*structpb.Value_StringValue)
			if !ok {
				return nil, fmt.Errorf("field %s.json_format[%s]: only string values are supported", path, k)
			}
			parts, err := telemetry.ParseLogFormat(sv.StringValue)
			if err != nil {
				return nil, fmt.Errorf("field %s.json_format[%s]: %q: %v", path, k, sv.StringValue, err)
			}
			out.JSON = append(out.JSON, JSONField{Key: k, Value: parts})
		}
		return out, nil
	}
	return nil, nil
}

package xdsconfig

import (
	"fmt"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	celfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"

	"github.com/bowline-mesh/bowline/internal/telemetry"
)

const (
	typeFileAccessLog = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
	typeCELFilter     = "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter"
)

func unmarshalAccessLogs(logs []*accesslogv3.AccessLog, path string) ([]AccessLog, error) {
	var out []AccessLog
	for i, l := range logs {
		p := fmt.Sprintf("%s.access_log[%d]", path, i)
		if err := checkFields(l, p, "name", "typed_config", "filter"); err != nil {
			return nil, err
		}
		tc := l.GetTypedConfig()
		if tc.GetTypeUrl() != typeFileAccessLog {
			return nil, fmt.Errorf("field %s.typed_config: access logger %q (%s) unsupported (supported: envoy.access_loggers.file)", p, l.GetName(), tc.GetTypeUrl())
		}
		fl := &filev3.FileAccessLog{}
		if err := tc.UnmarshalTo(fl); err != nil {
			return nil, fmt.Errorf("field %s.typed_config: %w", p, err)
		}
		if err := checkFields(fl, p+".typed_config", "path", "log_format"); err != nil {
			return nil, err
		}
		al := AccessLog{Path: fl.GetPath()}
		if al.Path == "" {
			return nil, fmt.Errorf("field %s.typed_config.path: empty", p)
		}
		if lf := fl.GetLogFormat(); lf != nil {
			// Istio's default formats are Bowline's standard JSON or text
			// lines; other formats are rendered as written.
			al.JSON = lf.GetJsonFormat() != nil
			f, err := unmarshalLogFormat(lf, p+".typed_config.log_format")
			if err != nil {
				return nil, err
			}
			al.Format = f
		}
		if f := l.GetFilter(); f != nil {
			if err := checkFields(f, p+".filter", "extension_filter"); err != nil {
				return nil, err
			}
			ef := f.GetExtensionFilter()
			if ef.GetTypedConfig().GetTypeUrl() != typeCELFilter {
				return nil, fmt.Errorf("field %s.filter.extension_filter: %q unsupported (supported: envoy.access_loggers.extension_filters.cel)", p, ef.GetName())
			}
			cf := &celfilterv3.ExpressionFilter{}
			if err := ef.GetTypedConfig().UnmarshalTo(cf); err != nil {
				return nil, fmt.Errorf("field %s.filter.extension_filter.typed_config: %w", p, err)
			}
			prg, err := telemetry.CompileAccessLogFilter(cf.GetExpression())
			if err != nil {
				return nil, fmt.Errorf("field %s.filter.extension_filter.typed_config.expression: %q: %v", p, cf.GetExpression(), err)
			}
			al.Filter, al.Expression = prg, cf.GetExpression()
		}
		out = append(out, al)
	}
	return out, nil
}

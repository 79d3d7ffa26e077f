package validation

import (
	"fmt"
	"regexp"
	"strings"

	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/bowline-mesh/bowline/internal/config"
	bltelemetry "github.com/bowline-mesh/bowline/internal/telemetry"
)

// validateTelemetry applies Istio's rules for Telemetry: target selection,
// provider references, tracing sampling and custom tags, metric overrides
// and access log filters.
func validateTelemetry(obj *config.Object) []config.FieldError {
	t, ok := obj.Spec.(*telemetry.Telemetry)
	if !ok {
		return []config.FieldError{{Path: "spec", Reason: fmt.Sprintf("unexpected spec type %T", obj.Spec)}}
	}
	r := &fieldErrors{}
	secCheckDryRun(r, obj)
	secCheckPolicyTarget(r, t.GetSelector(), t.GetTargetRef(), t.GetTargetRefs())
	telemetryCheckTracing(r, t.GetTracing())
	telemetryCheckMetrics(r, t.GetMetrics())
	telemetryCheckAccessLogging(r, t.GetAccessLogging())
	return r.list
}

// telemetryCheckProviders checks provider references: each names a provider.
func telemetryCheckProviders(r *fieldErrors, path string, providers []*telemetry.ProviderRef) {
	for i, p := range providers {
		if p.GetName() == "" {
			r.errorf(indexPath(path, i)+".name", "required")
		}
	}
}

func telemetryCheckTracing(r *fieldErrors, tracing []*telemetry.Tracing) {
	if len(tracing) > 1 {
		r.warnf("spec.tracing", "only one tracing configuration is supported; %d are set", len(tracing))
	}
	for i, tr := range tracing {
		path := indexPath("spec.tracing", i)
		if tr == nil {
			continue
		}
		if len(tr.GetProviders()) > 1 {
			r.warnf(path+".providers", "only one tracing provider is supported; %d are set", len(tr.GetProviders()))
		}
		telemetryCheckProviders(r, path+".providers", tr.GetProviders())
		if s := tr.GetRandomSamplingPercentage(); s != nil && (s.GetValue() < 0 || s.GetValue() > 100) {
			r.errorf(path+".randomSamplingPercentage", "must be between 0 and 100, got %v", s.GetValue())
		}
		for _, name := range sortedMapKeys(tr.GetCustomTags()) {
			tp := keyPath(path+".customTags", name)
			tag := tr.GetCustomTags()[name]
			if name == "" {
				r.errorf(tp, "tag name must not be empty")
			}
			if tag == nil {
				r.errorf(tp, "tag %q must have a value", name)
				continue
			}
			switch v := tag.GetType().(type) {
			case *telemetry.Tracing_CustomTag_Literal:
				if v.Literal.GetValue() == "" {
					r.errorf(tp+".literal.value", "required")
				}
			case *telemetry.Tracing_CustomTag_Header:
				if v.Header.GetName() == "" {
					r.errorf(tp+".header.name", "required")
				}
			case *telemetry.Tracing_CustomTag_Environment:
				if v.Environment.GetName() == "" {
					r.errorf(tp+".environment.name", "required")
				}
			case *telemetry.Tracing_CustomTag_Formatter:
				if v.Formatter.GetValue() == "" {
					r.errorf(tp+".formatter.value", "required")
				}
			default:
				r.warnf(tp, "tag %q sets none of literal, header, environment or formatter and adds nothing", name)
			}
		}
	}
}

// telemetryLabelRE is a Prometheus label name; metric tags become labels.
var telemetryLabelRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

func telemetryCheckMetrics(r *fieldErrors, metrics []*telemetry.Metrics) {
	for i, m := range metrics {
		path := indexPath("spec.metrics", i)
		if m == nil {
			continue
		}
		telemetryCheckProviders(r, path+".providers", m.GetProviders())
		durationProblems(r, path+".reportingInterval", m.GetReportingInterval())
		for j, o := range m.GetOverrides() {
			op := indexPath(path+".overrides", j)
			if o == nil {
				r.errorf(op, "must not be null")
				continue
			}
			if cm, ok := o.GetMatch().GetMetricMatch().(*telemetry.MetricSelector_CustomMetric); ok && cm.CustomMetric == "" {
				r.errorf(op+".match.customMetric", "must not be empty")
			}
			for _, name := range sortedMapKeys(o.GetTagOverrides()) {
				tp := keyPath(op+".tagOverrides", name)
				to := o.GetTagOverrides()[name]
				switch {
				case name == "":
					r.warnf(tp, "tag name must not be empty")
				case !telemetryLabelRE.MatchString(name):
					r.warnf(tp, "tag %q is not a valid Prometheus label name (letters, digits and '_', not starting with a digit)", name)
				}
				if to == nil {
					r.errorf(tp, "tag override must not be null")
					continue
				}
				switch to.GetOperation() {
				case telemetry.MetricsOverrides_TagOverride_UPSERT:
					if to.GetValue() == "" {
						r.errorf(tp+".value", "required when operation is UPSERT")
					} else if _, err := bltelemetry.CompileMetricTag(to.GetValue()); err != nil {
						r.errorf(tp+".value", "invalid CEL expression %q: %s", to.GetValue(), celProblem(err))
					}
				case telemetry.MetricsOverrides_TagOverride_REMOVE:
					if to.GetValue() != "" {
						r.errorf(tp+".value", "must not be set when operation is REMOVE")
					}
				}
			}
		}
	}
}

func telemetryCheckAccessLogging(r *fieldErrors, logging []*telemetry.AccessLogging) {
	for i, l := range logging {
		path := indexPath("spec.accessLogging", i)
		if l == nil {
			continue
		}
		if f := l.GetFilter(); f != nil {
			if p := telemetryExpressionProblem(f.GetExpression()); p != "" {
				r.errorf(path+".filter.expression", "%s", p)
			} else if _, err := bltelemetry.CompileAccessLogFilter(f.GetExpression()); err != nil {
				r.errorf(path+".filter.expression", "invalid CEL expression %q: %s", f.GetExpression(), celProblem(err))
			}
		}
		telemetryCheckProviders(r, path+".providers", l.GetProviders())
	}
}

// telemetryExpressionProblem checks an access log filter, a CEL expression,
// for the mistakes a parser rejects first: emptiness, unbalanced brackets
// and unterminated strings. It is not a full CEL parser.
func telemetryExpressionProblem(expr string) string {
	if strings.TrimSpace(expr) == "" {
		return "filter expression must not be empty"
	}
	var stack []rune
	closing := map[rune]rune{')': '(', ']': '[', '}': '{'}
	var quote rune
	escaped := false
	for _, c := range expr {
		if quote != 0 {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == quote:
				quote = 0
			}
			continue
		}
		switch c {
		case '"', '\'':
			quote = c
		case '(', '[', '{':
			stack = append(stack, c)
		case ')', ']', '}':
			if len(stack) == 0 || stack[len(stack)-1] != closing[c] {
				return fmt.Sprintf("invalid CEL expression %q: unbalanced %q", expr, c)
			}
			stack = stack[:len(stack)-1]
		}
	}
	switch {
	case quote != 0:
		return fmt.Sprintf("invalid CEL expression %q: unterminated string", expr)
	case len(stack) > 0:
		return fmt.Sprintf("invalid CEL expression %q: unclosed %q", expr, stack[len(stack)-1])
	}
	trimmed := strings.TrimSpace(expr)
	for _, op := range []string{"&&", "||", "==", "!=", ">=", "<=", "+", "-", "*", "/", "%", "<", ">", "!", "?", ":", "."} {
		if strings.HasSuffix(trimmed, op) {
			return fmt.Sprintf("invalid CEL expression %q: ends with %q", expr, op)
		}
	}
	return ""
}

var celErrorRE = regexp.MustCompile(`^ERROR: <input>:\d+:(\d+): (.*)$`)

// celProblem is the first message of a CEL compile error with its column.
func celProblem(err error) string {
	first, _, _ := strings.Cut(strings.TrimSpace(err.Error()), "\n")
	if m := celErrorRE.FindStringSubmatch(strings.TrimSpace(first)); m != nil {
		return m[2] + " (column " + m[1] + ")"
	}
	return first
}

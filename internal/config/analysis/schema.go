package analysis

import (
	"strings"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/config/validation"
)

// schemaAnalyzer reports what the loader and the validation rules found:
// IST0106 SchemaValidationError for errors, IST0133 SchemaWarning for
// warnings, as Istio's schema.ValidationAnalyzer does.
type schemaAnalyzer struct{}

var _ Analyzer = schemaAnalyzer{}

func (schemaAnalyzer) Name() string { return "schema.ValidationAnalyzer" }
func (schemaAnalyzer) Description() string {
	return "Checks every resource against its schema and Istio's validation rules"
}

func (schemaAnalyzer) Analyze(c *Context) {
	report := func(p config.Problem) {
		t := SchemaValidationError
		if p.Severity == config.SeverityWarning {
			t = SchemaWarning
		}
		detail := p.Message
		if p.Field != "" {
			detail = p.Field + ": " + p.Message
		}
		c.add(Message{Type: t, Kind: p.Kind, Namespace: p.Namespace, Name: p.Name, File: p.File, Line: p.Line, Args: []any{detail}})
	}
	for _, p := range c.in.Problems {
		report(p)
	}
	_, problems := validation.Objects(c.in.Objects)
	for _, p := range problems {
		if p.Severity == config.SeverityWarning && reportedByMatches(p.Message) {
			continue
		}
		report(p)
	}
}

// reportedByMatches reports whether a validation warning is one the matches
// analyzer reports with Istio's own code and wording (IST0130, IST0131), as
// Istio turns these validation warnings into those messages.
func reportedByMatches(msg string) bool {
	return strings.HasPrefix(msg, "rule is never used") || strings.HasPrefix(msg, "match is never used")
}

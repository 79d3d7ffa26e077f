package config

import (
	"fmt"
	"strings"
)

// Severity of a problem.
type Severity string

// Severities.
const (
	SeverityError   Severity = "Error"
	SeverityWarning Severity = "Warning"
	SeverityInfo    Severity = "Info"
)

// FieldError is one problem with one field of one object, as produced by
// validators. Path is rooted at the document ("spec.http[0].route[1].weight",
// "metadata.name").
type FieldError struct {
	Path   string
	Reason string
	// Warning marks problems Istio reports as warnings (the object is still accepted).
	Warning bool
}

func (e FieldError) Error() string { return e.Path + ": " + e.Reason }

// Problem is a located, user-facing problem: file:line, resource, field, reason.
type Problem struct {
	Severity  Severity `json:"severity"`
	File      string   `json:"file,omitempty"`
	Line      int      `json:"line,omitempty"`
	Kind      string   `json:"kind,omitempty"`
	Namespace string   `json:"namespace,omitempty"`
	Name      string   `json:"name,omitempty"`
	Field     string   `json:"field,omitempty"`
	Message   string   `json:"message"`
}

// String renders the problem the way every Bowline command prints it:
//
//	reviews.yaml:14: VirtualService default/reviews: spec.http[0].route[1].weight: must be between 0 and 100
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
	}
	if p.Severity == SeverityWarning {
		b.WriteString("warning: ")
	}
	if p.Kind != "" {
		b.WriteString(p.Kind)
		if p.Name != "" && p.Namespace == "" { // cluster-scoped
			b.WriteString(" " + p.Name)
		} else if p.Name != "" {
			b.WriteString(" " + p.Namespace + "/" + p.Name)
		}
		b.WriteString(": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// ProblemFor locates a FieldError of obj.
func ProblemFor(obj *Object, fe FieldError) Problem {
	sev := SeverityError
	if fe.Warning {
		sev = SeverityWarning
	}
	return Problem{
		Severity:  sev,
		File:      obj.Source.File,
		Line:      obj.Lines.Line(fe.Path, obj.Source.Line),
		Kind:      obj.GVK.Kind,
		Namespace: obj.Meta.Namespace,
		Name:      obj.Meta.Name,
		Field:     fe.Path,
		Message:   fe.Reason,
	}
}

// Problems is a list of problems that is also an error.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// HasErrors reports whether any problem is an error (not a warning).
func (ps Problems) HasErrors() bool {
	for _, p := range ps {
		if p.Severity == SeverityError {
			return true
		}
	}
	return false
}

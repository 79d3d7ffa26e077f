package authz

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// pathTemplate is a compiled Envoy URI template (uri_template matcher):
// "*" or "{name}" or "{name=*}" matches one non-empty segment, "**" or
// "{name=**}" matches the rest of the path (zero or more segments, "/"
// included) and must be the last operator; anything else is literal.
type pathTemplate struct {
	re *regexp.Regexp
}

func parseTemplate(t string) (*pathTemplate, error) {
	if !strings.HasPrefix(t, "/") {
		return nil, errors.New("must start with /")
	}
	var b strings.Builder
	b.WriteString("^")
	segs := strings.Split(t[1:], "/")
	sawMulti := false
	for i, seg := range segs {
		b.WriteString("/")
		op, rest := templateOp(seg)
		if sawMulti && op != "" {
			return nil, fmt.Errorf("operator %q after ** ", seg)
		}
		switch op {
		case "*":
			if rest != "" {
				return nil, fmt.Errorf("segment %q: * must be a whole segment", seg)
			}
			b.WriteString(`[^/]+`)
		case "**":
			sawMulti = true
			if rest != "" && i != len(segs)-1 {
				return nil, fmt.Errorf("segment %q: ** may only be followed by a literal in the last segment", seg)
			}
			b.WriteString(`.*`)
			b.WriteString(regexp.QuoteMeta(rest))
		default:
			if strings.ContainsAny(seg, "{}*") {
				return nil, fmt.Errorf("segment %q: invalid operator", seg)
			}
			b.WriteString(regexp.QuoteMeta(seg))
		}
	}
	b.WriteString("$")
	return &pathTemplate{re: regexp.MustCompile(b.String())}, nil
}

// templateOp splits a segment into its operator ("*", "**" or "") and what
// follows it.
func templateOp(seg string) (op, rest string) {
	switch {
	case strings.HasPrefix(seg, "**"):
		return "**", seg[2:]
	case strings.HasPrefix(seg, "*"):
		return "*", seg[1:]
	case strings.HasPrefix(seg, "{"):
		end := strings.IndexByte(seg, '}')
		if end < 0 {
			return "", seg
		}
		name, pat, hasPat := strings.Cut(seg[1:end], "=")
		if name == "" {
			return "", seg
		}
		switch {
		case !hasPat || pat == "*":
			return "*", seg[end+1:]
		case pat == "**":
			return "**", seg[end+1:]
		}
	}
	return "", seg
}

func (t *pathTemplate) match(path string) bool { return t.re.MatchString(path) }

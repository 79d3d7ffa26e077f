package xdsconfig

import (
	"fmt"
	"regexp"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"

	"github.com/bowline-mesh/bowline/internal/proxy/match"
)

// checkFields is match.OnlyFields: the one proto field check of the data plane.
func checkFields(m proto.Message, path string, allowed ...string) error {
	return match.OnlyFields(m, path, allowed...)
}

func joinPath(path, field string) string { return match.JoinPath(path, field) }

// StringMatchKind says how a StringMatcher compares.
type StringMatchKind int

// String match kinds, as envoy.type.matcher.v3.StringMatcher.
const (
	MatchExact StringMatchKind = iota
	MatchPrefix
	MatchSuffix
	MatchContains
	MatchRegex
)

// StringMatcher is a checked envoy.type.matcher.v3.StringMatcher.
type StringMatcher struct {
	// Kind is the comparison.
	Kind StringMatchKind
	// Value is the literal to compare with (lower case when IgnoreCase).
	Value string
	// IgnoreCase compares case-insensitively (not for regexes).
	IgnoreCase bool
	// Regex is the compiled pattern for MatchRegex, matched against the whole value.
	Regex *regexp.Regexp
}

// Match reports whether s matches.
func (m *StringMatcher) Match(s string) bool {
	if m.Kind == MatchRegex {
		return m.Regex.MatchString(s)
	}
	if m.IgnoreCase {
		s = strings.ToLower(s)
	}
	switch m.Kind {
	case MatchExact:
		return s == m.Value
	case MatchPrefix:
		return strings.HasPrefix(s, m.Value)
	case MatchSuffix:
		return strings.HasSuffix(s, m.Value)
	case MatchContains:
		return strings.Contains(s, m.Value)
	}
	return false
}

// compileRegex compiles an Envoy RE2 regex so that it must match the whole input.
func compileRegex(r *matcherv3.RegexMatcher, path string) (*regexp.Regexp, error) {
	if r == nil {
		return nil, fmt.Errorf("field %s: missing", path)
	}
	if err := checkFields(r, path, "regex", "google_re2"); err != nil {
		return nil, err
	}
	re, err := regexp.Compile("^(?:" + r.GetRegex() + ")$")
	if err != nil {
		return nil, fmt.Errorf("field %s.regex: %w", path, err)
	}
	return re, nil
}

func convertStringMatcher(m *matcherv3.StringMatcher, path string) (*StringMatcher, error) {
	if m == nil {
		return nil, fmt.Errorf("field %s: missing", path)
	}
	if err := checkFields(m, path, "exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case"); err != nil {
		return nil, err
	}
	out := &StringMatcher{IgnoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		out.Kind, out.Value = MatchExact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		out.Kind, out.Value = MatchPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		out.Kind, out.Value = MatchSuffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		out.Kind, out.Value = MatchContains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := compileRegex(p.SafeRegex, path+".safe_regex")
		if err != nil {
			return nil, err
		}
		out.Kind, out.Regex = MatchRegex, re
	default:
		return nil, fmt.Errorf("field %s.match_pattern: missing", path)
	}
	if out.IgnoreCase {
		out.Value = strings.ToLower(out.Value)
	}
	return out, nil
}

// HeaderAppend says what a header edit does when the header exists.
type HeaderAppend int

// Header append actions, as envoy.config.core.v3.HeaderValueOption.HeaderAppendAction.
const (
	AppendIfExistsOrAdd HeaderAppend = iota
	AddIfAbsent
	OverwriteIfExistsOrAdd
	OverwriteIfExists
)

// HeaderValue is one header to add.
type HeaderValue struct {
	// Key is the header name.
	Key string
	// Value is the header value.
	Value string
	// Action is what to do if the header is already present.
	Action HeaderAppend
}

// HeaderEdits are the header additions and removals of a route level.
type HeaderEdits struct {
	// RequestAdd are added to the upstream request.
	RequestAdd []HeaderValue
	// RequestRemove are removed from the upstream request.
	RequestRemove []string
	// ResponseAdd are added to the downstream response.
	ResponseAdd []HeaderValue
	// ResponseRemove are removed from the downstream response.
	ResponseRemove []string
}

// Empty reports whether there is nothing to edit.
func (h *HeaderEdits) Empty() bool {
	return len(h.RequestAdd)+len(h.RequestRemove)+len(h.ResponseAdd)+len(h.ResponseRemove) == 0
}

func convertHeaderValues(in []*corev3.HeaderValueOption, path string) ([]HeaderValue, error) {
	var out []HeaderValue
	for i, h := range in {
		p := fmt.Sprintf("%s[%d]", path, i)
		if err := checkFields(h, p, "header", "append", "append_action", "keep_empty_value"); err != nil {
			return nil, err
		}
		if err := checkFields(h.GetHeader(), p+".header", "key", "value", "raw_value"); err != nil {
			return nil, err
		}
		key := strings.ToLower(h.GetHeader().GetKey())
		if key == "" {
			return nil, fmt.Errorf("field %s.header.key: empty", p)
		}
		val := h.GetHeader().GetValue()
		if raw := h.GetHeader().GetRawValue(); len(raw) > 0 {
			val = string(raw)
		}
		if strings.Contains(val, "%") {
			return nil, fmt.Errorf("field %s.header.value: command operators (%%...%%) are unsupported", p)
		}
		act := HeaderAppend(h.GetAppendAction())
		if h.Append != nil {
			if h.GetAppend().GetValue() {
				act = AppendIfExistsOrAdd
			} else {
				act = OverwriteIfExistsOrAdd
			}
		}
		out = append(out, HeaderValue{Key: key, Value: val, Action: act})
	}
	return out, nil
}

func convertHeaderEdits(path string, reqAdd []*corev3.HeaderValueOption, reqRemove []string,
	respAdd []*corev3.HeaderValueOption, respRemove []string) (HeaderEdits, error) {
	var (
		e   HeaderEdits
		err error
	)
	if e.RequestAdd, err = convertHeaderValues(reqAdd, joinPath(path, "request_headers_to_add")); err != nil {
		return e, err
	}
	if e.ResponseAdd, err = convertHeaderValues(respAdd, joinPath(path, "response_headers_to_add")); err != nil {
		return e, err
	}
	for _, h := range reqRemove {
		e.RequestRemove = append(e.RequestRemove, strings.ToLower(h))
	}
	for _, h := range respRemove {
		e.ResponseRemove = append(e.ResponseRemove, strings.ToLower(h))
	}
	return e, nil
}

// fractionPerMillion converts an Envoy FractionalPercent to parts per million.
func fractionPerMillion(f *typev3.FractionalPercent) uint32 {
	if f == nil {
		return 1_000_000
	}
	n := uint64(f.GetNumerator()) // no uint32 overflow: 429497/HUNDRED is all, not a wrapped share
	switch f.GetDenominator() {
	case typev3.FractionalPercent_HUNDRED:
		n *= 10_000
	case typev3.FractionalPercent_TEN_THOUSAND:
		n *= 100
	}
	return uint32(min(n, 1_000_000))
}

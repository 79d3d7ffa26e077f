package authz

import (
	"fmt"
	"math"
	"regexp"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// stringMatcher is a compiled envoy.type.matcher.v3.StringMatcher.
type stringMatcher struct {
	kind       byte // 'e'xact, 'p'refix, 's'uffix, 'c'ontains, 'r'egex
	value      string
	re         *regexp.Regexp
	ignoreCase bool
}

func compileString(m *matcherv3.StringMatcher, path string) (*stringMatcher, error) {
	if m == nil {
		return nil, fmt.Errorf("field %s: missing", path)
	}
	out := &stringMatcher{ignoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		out.kind, out.value = 'e', p.Exact
	case *matcherv3.StringMatcher_Prefix:
		out.kind, out.value = 'p', p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		out.kind, out.value = 's', p.Suffix
	case *matcherv3.StringMatcher_Contains:
		out.kind, out.value = 'c', p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := compileRegex(p.SafeRegex, path+".safe_regex")
		if err != nil {
			return nil, err
		}
		out.kind, out.re = 'r', re
	default:
		return nil, fmt.Errorf("field %s: match pattern %T unsupported", path, p)
	}
	if out.ignoreCase && out.kind != 'r' {
		out.value = strings.ToLower(out.value)
	}
	return out, nil
}

// compileRegex compiles a RegexMatcher with full-match semantics (Envoy's
// safe_regex matches the whole value). Go's regexp is RE2, as Envoy's.
func compileRegex(m *matcherv3.RegexMatcher, path string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(`^(?:` + m.GetRegex() + `)$`)
	if err != nil {
		return nil, fmt.Errorf("field %s.regex: %w", path, err)
	}
	return re, nil
}

func (m *stringMatcher) match(v string) bool {
	if m.kind == 'r' {
		return m.re.MatchString(v)
	}
	if m.ignoreCase {
		switch m.kind {
		case 'e':
			return strings.EqualFold(v, m.value)
		case 'p':
			return len(v) >= len(m.value) && strings.EqualFold(v[:len(m.value)], m.value)
		case 's':
			return len(v) >= len(m.value) && strings.EqualFold(v[len(v)-len(m.value):], m.value)
		}
		return strings.Contains(strings.ToLower(v), m.value)
	}
	switch m.kind {
	case 'e':
		return v == m.value
	case 'p':
		return strings.HasPrefix(v, m.value)
	case 's':
		return strings.HasSuffix(v, m.value)
	}
	return strings.Contains(v, m.value)
}

// StringMatcher is a compiled envoy.type.matcher.v3.StringMatcher for
// matchers outside RBAC (ext_authz's allowed header lists): the one
// implementation RBAC uses.
type StringMatcher struct{ m *stringMatcher }

// CompileStringMatcher compiles m; errors name fields under path.
func CompileStringMatcher(m *matcherv3.StringMatcher, path string) (StringMatcher, error) {
	c, err := compileString(m, path)
	return StringMatcher{m: c}, err
}

// Match reports whether v matches.
func (m StringMatcher) Match(v string) bool { return m.m.match(v) }

// headerMatcher is a compiled envoy.config.route.v3.HeaderMatcher.
type headerMatcher struct {
	name string
	// present is set for present_match; presentValue is its value.
	present, presentValue bool
	str                   *stringMatcher
	rangeStart, rangeEnd  int64
	isRange               bool
	invert                bool
	missingAsEmpty        bool
}

func compileHeader(h *routev3.HeaderMatcher, path string) (*headerMatcher, error) {
	if err := onlyFields(h, path, "name", "exact_match", "safe_regex_match", "range_match", "present_match",
		"prefix_match", "suffix_match", "contains_match", "string_match", "invert_match",
		"treat_missing_header_as_empty"); err != nil {
		return nil, err
	}
	name := strings.ToLower(h.GetName())
	if name == "" {
		return nil, fmt.Errorf("field %s.name: empty", path)
	}
	out := &headerMatcher{name: name, invert: h.GetInvertMatch(), missingAsEmpty: h.GetTreatMissingHeaderAsEmpty()}
	var err error
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case nil:
		out.present, out.presentValue = true, true
	case *routev3.HeaderMatcher_PresentMatch:
		out.present, out.presentValue = true, s.PresentMatch
	case *routev3.HeaderMatcher_ExactMatch:
		out.str = &stringMatcher{kind: 'e', value: s.ExactMatch}
	case *routev3.HeaderMatcher_PrefixMatch:
		out.str = &stringMatcher{kind: 'p', value: s.PrefixMatch}
	case *routev3.HeaderMatcher_SuffixMatch:
		out.str = &stringMatcher{kind: 's', value: s.SuffixMatch}
	case *routev3.HeaderMatcher_ContainsMatch:
		out.str = &stringMatcher{kind: 'c', value: s.ContainsMatch}
	case *routev3.HeaderMatcher_SafeRegexMatch:
		re, rerr := compileRegex(s.SafeRegexMatch, path+".safe_regex_match")
		if rerr != nil {
			return nil, rerr
		}
		out.str = &stringMatcher{kind: 'r', re: re}
	case *routev3.HeaderMatcher_StringMatch:
		out.str, err = compileString(s.StringMatch, path+".string_match")
	case *routev3.HeaderMatcher_RangeMatch:
		out.isRange, out.rangeStart, out.rangeEnd = true, s.RangeMatch.GetStart(), s.RangeMatch.GetEnd()
	default:
		err = fmt.Errorf("field %s: header match %T unsupported", path, s)
	}
	return out, err
}

// match follows Envoy: repeated headers are joined with ","; a missing
// header matches only present_match: false (or, with
// treat_missing_header_as_empty, is matched as ""); invert_match flips the
// result for a present header.
func (h *headerMatcher) match(r *Request) bool {
	v, ok := r.header(h.name)
	if !ok {
		if h.present {
			return !h.presentValue != h.invert
		}
		if !h.missingAsEmpty {
			return false
		}
		v = ""
	}
	var res bool
	switch {
	case h.present:
		res = h.presentValue
	case h.isRange:
		var n int64
		_, err := fmt.Sscan(v, &n)
		res = err == nil && n >= h.rangeStart && n < h.rangeEnd
	default:
		res = h.str.match(v)
	}
	return res != h.invert
}

// valueMatcher is a compiled envoy.type.matcher.v3.ValueMatcher.
type valueMatcher struct {
	kind    byte // 'n'ull, 'd'ouble, 's'tring, 'b'ool, 'p'resent, 'l'ist one_of, 'o'r
	str     *stringMatcher
	dExact  float64
	dRange  [2]float64
	dIsExac bool
	b       bool
	list    *valueMatcher
	or      []*valueMatcher
}

func compileValue(m *matcherv3.ValueMatcher, path string) (*valueMatcher, error) {
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.ValueMatcher_NullMatch_:
		return &valueMatcher{kind: 'n'}, nil
	case *matcherv3.ValueMatcher_DoubleMatch:
		out := &valueMatcher{kind: 'd'}
		switch d := p.DoubleMatch.GetMatchPattern().(type) {
		case *matcherv3.DoubleMatcher_Exact:
			out.dIsExac, out.dExact = true, d.Exact
		case *matcherv3.DoubleMatcher_Range:
			out.dRange = [2]float64{d.Range.GetStart(), d.Range.GetEnd()}
		default:
			return nil, fmt.Errorf("field %s.double_match: missing pattern", path)
		}
		return out, nil
	case *matcherv3.ValueMatcher_StringMatch:
		s, err := compileString(p.StringMatch, path+".string_match")
		return &valueMatcher{kind: 's', str: s}, err
	case *matcherv3.ValueMatcher_BoolMatch:
		return &valueMatcher{kind: 'b', b: p.BoolMatch}, nil
	case *matcherv3.ValueMatcher_PresentMatch:
		return &valueMatcher{kind: 'p', b: p.PresentMatch}, nil
	case *matcherv3.ValueMatcher_ListMatch:
		inner, err := compileValue(p.ListMatch.GetOneOf(), path+".list_match.one_of")
		return &valueMatcher{kind: 'l', list: inner}, err
	case *matcherv3.ValueMatcher_OrMatch:
		out := &valueMatcher{kind: 'o'}
		for i, vm := range p.OrMatch.GetValueMatchers() {
			c, err := compileValue(vm, fmt.Sprintf("%s.or_match.value_matchers[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out.or = append(out.or, c)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("field %s: value match %T unsupported", path, p)
	}
}

// match follows Envoy's ValueMatcher on a protobuf Value (here in
// encoding/json shapes); ok is false when the path led nowhere.
func (m *valueMatcher) match(v any, ok bool) bool {
	if m.kind == 'p' {
		return ok == m.b
	}
	if !ok {
		return false
	}
	switch m.kind {
	case 'n':
		return v == nil
	case 'd':
		f, isNum := v.(float64)
		if !isNum || math.IsNaN(f) {
			return false
		}
		if m.dIsExac {
			return f == m.dExact
		}
		return f >= m.dRange[0] && f < m.dRange[1]
	case 's':
		s, isStr := v.(string)
		return isStr && m.str.match(s)
	case 'b':
		b, isBool := v.(bool)
		return isBool && b == m.b
	case 'l':
		l, isList := v.([]any)
		if !isList {
			return false
		}
		for _, e := range l {
			if m.list.match(e, true) {
				return true
			}
		}
		return false
	case 'o':
		for _, o := range m.or {
			if o.match(v, ok) {
				return true
			}
		}
	}
	return false
}

// MetadataMatcher is a compiled envoy.type.matcher.v3.MetadataMatcher for
// matchers outside RBAC (a route's dynamic_metadata): the same matcher RBAC
// uses on jwt_authn's payload.
type MetadataMatcher struct{ m *metadataMatcher }

// CompileMetadataMatcher compiles m; errors name fields under path.
func CompileMetadataMatcher(m *matcherv3.MetadataMatcher, path string) (MetadataMatcher, error) {
	c, err := compileMetadata(m, path)
	return MetadataMatcher{m: c}, err
}

// Match reports whether md (dynamic metadata by filter name) matches.
func (m MetadataMatcher) Match(md map[string]map[string]any) bool {
	return m.m.match(&Request{Metadata: md})
}

// metadataMatcher is a compiled envoy.type.matcher.v3.MetadataMatcher.
type metadataMatcher struct {
	filter string
	path   []string
	value  *valueMatcher
	invert bool
}

func compileMetadata(m *matcherv3.MetadataMatcher, path string) (*metadataMatcher, error) {
	if m.GetFilter() == "" {
		return nil, fmt.Errorf("field %s.filter: empty", path)
	}
	out := &metadataMatcher{filter: m.GetFilter(), invert: m.GetInvert()}
	for i, seg := range m.GetPath() {
		k := seg.GetKey()
		if k == "" {
			return nil, fmt.Errorf("field %s.path[%d].key: empty", path, i)
		}
		out.path = append(out.path, k)
	}
	if len(out.path) == 0 {
		return nil, fmt.Errorf("field %s.path: empty", path)
	}
	var err error
	out.value, err = compileValue(m.GetValue(), path+".value")
	return out, err
}

func (m *metadataMatcher) match(r *Request) bool {
	var v any
	ns, ok := r.Metadata[m.filter]
	if ok {
		var cur any = ns
		for _, k := range m.path {
			obj, isObj := cur.(map[string]any)
			if !isObj {
				ok = false
				break
			}
			cur, ok = obj[k]
			if !ok {
				break
			}
		}
		v = cur
	}
	return m.value.match(v, ok) != m.invert
}

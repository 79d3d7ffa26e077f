package match

import (
	"testing"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

func TestOnlyFields(t *testing.T) {
	m := &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "a"}, IgnoreCase: true}
	cases := []struct {
		name, path string
		allowed    []string
		want       string
	}{
		{"all allowed", "r.m", []string{"exact", "ignore_case"}, ""},
		{"one unsupported", "r.m", []string{"exact"}, "field r.m.ignore_case: unsupported"},
		{"top level", "", []string{"ignore_case"}, "field exact: unsupported"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := OnlyFields(m, tc.path, tc.allowed...)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("OnlyFields = %q, want %q", got, tc.want)
			}
		})
	}
}

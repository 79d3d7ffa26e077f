package telemetry

import (
	"strings"
	"testing"
)

func TestCanonicalService(t *testing.T) {
	cases := []struct {
		name     string
		labels   map[string]string
		workload string
		want     string
	}{
		{"label wins", map[string]string{CanonicalNameLabel: "ratings-svc", "app.kubernetes.io/name": "k", "app": "ratings"}, "ratings-v1", "ratings-svc"},
		{"app.kubernetes.io/name before app", map[string]string{"app.kubernetes.io/name": "k", "app": "ratings"}, "ratings-v1", "k"},
		{"app", map[string]string{"app": "ratings"}, "ratings-v1", "ratings"},
		{"workload name last", nil, "ratings-v1", "ratings-v1"},
		{"nothing", nil, "", ""},
	}
	for _, c := range cases {
		if got := CanonicalService(c.labels, c.workload); got != c.want {
			t.Errorf("%s: CanonicalService = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestDefaultCanonicalName(t *testing.T) {
	if got := DefaultCanonicalName(map[string]string{CanonicalNameLabel: "ignored", "app": "-ratings_"}, "w"); got != "ratings" {
		t.Errorf("trimmed app = %q, want ratings (the existing label is not a default)", got)
	}
	long := strings.Repeat("a", 70)
	if got := DefaultCanonicalName(nil, long); got != long[:63] {
		t.Errorf("a 70-character workload name gives %d characters, want 63", len(got))
	}
}

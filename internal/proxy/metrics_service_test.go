package proxy

import (
	"testing"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// Two services on one port of a workload, as istiod lists them in the
// inbound cluster's istio.services metadata.
var twoServices = []xdsconfig.ServiceMeta{
	{Host: "reviews.default.svc.cluster.local", Name: "reviews", Namespace: "default"},
	{Host: "reviews-v2.default.svc.cluster.local", Name: "reviews-v2", Namespace: "default"},
}

// TestPickService: the service the authority names, by FQDN, short name,
// name.namespace or a prefix of the FQDN, with or without a port; else the
// first.
func TestPickService(t *testing.T) {
	for _, c := range []struct {
		authority, want string
	}{
		{"reviews-v2.default.svc.cluster.local:9080", "reviews-v2"},
		{"reviews-v2", "reviews-v2"},
		{"reviews-v2:9080", "reviews-v2"},
		{"reviews-v2.default", "reviews-v2"},
		{"reviews-v2.default.svc", "reviews-v2"},
		{"reviews", "reviews"},
		{"reviews-v", "reviews"}, // no service: the first
		{"10.0.0.7:9080", "reviews"},
		{"[::1]:9080", "reviews"},
		{"", "reviews"},
	} {
		if s := pickService(twoServices, c.authority); s == nil || s.Name != c.want {
			t.Errorf("pickService(%q) = %v, want %s", c.authority, s, c.want)
		}
	}
	if s := pickService(nil, "reviews"); s != nil {
		t.Errorf("pickService(nil) = %v, want nil", s)
	}
}

// BenchmarkPickService is its per-request cost (metrics labels) for an
// authority without a port naming the second service.
func BenchmarkPickService(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if s := pickService(twoServices, "reviews-v2.default"); s == nil {
			b.Fatal("no service")
		}
	}
}

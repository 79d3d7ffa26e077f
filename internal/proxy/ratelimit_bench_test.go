package proxy

import (
	"testing"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsclient"
)

// BenchmarkSourceCluster is the per-request cost of a source_cluster rate
// limit action's value.
func BenchmarkSourceCluster(b *testing.B) {
	p := New(Config{Node: xdsclient.NodeInfo{Workload: "productpage-v1", Namespace: "default",
		Labels: map[string]string{"app": "productpage", "version": "v1"}, IPs: []string{"10.0.0.7"}}})
	q := rateLimitRequest{&exchange{p: p}}
	b.ReportAllocs()
	for b.Loop() {
		if q.SourceCluster() != "productpage.default" {
			b.Fatal(q.SourceCluster())
		}
	}
}

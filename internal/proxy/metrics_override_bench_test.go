package proxy

import (
	"testing"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
	"github.com/bowline-mesh/bowline/internal/telemetry"
)

// BenchmarkObserveOverridden is the per-request cost of the HTTP metrics
// under an istio.stats config that adds a CEL tag and removes one to
// requests_total, drops request_bytes and leaves the other two untouched.
func BenchmarkObserveOverridden(b *testing.B) {
	prg, err := telemetry.CompileMetricTag("request.headers['x-user']")
	if err != nil {
		b.Fatal(err)
	}
	st := &xdsconfig.IstioStats{Metrics: map[string]*xdsconfig.MetricOverride{
		statRequests: {Remove: []string{"source_principal"}, Dimensions: []xdsconfig.MetricDimension{{Name: "user", Program: prg}}},
		statReqSize:  {Drop: true},
	}}
	x, _ := filterExchange(b)
	m := x.p.metrics
	b.ReportAllocs()
	for b.Loop() {
		m.observeRequest(x.rec, st, x)
	}
}

package xds_test

import (
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
	"github.com/bowline-mesh/bowline/internal/xds"
)

// TestNoCA: without a CA nothing needing a workload certificate is
// generated — no auto mTLS, no ISTIO_MUTUAL, plaintext inbound under a
// STRICT policy — and the configuration that asked for mTLS is a problem.
// TLS that needs no workload certificate (SIMPLE, MUTUAL with files) stays.
func TestNoCA(t *testing.T) {
	objs := load(t, svcs, "mtls/strict.yaml", "mtls/dr-tls.yaml")
	reg := registry.New(nil)
	reg.SetConfig(objs)
	for _, w := range registered {
		if err := reg.Register(w); err != nil {
			t.Fatal(err)
		}
	}
	snap := model.Build(objs, reg.View(), model.Options{NoCA: true})
	for _, c := range []*xds.Cache{nil, xds.NewCache()} {
		res := xds.GenerateCached(snap, sidecar, c)
		for _, r := range res.Clusters {
			cl := r.(*clusterv3.Cluster)
			if len(cl.GetTransportSocketMatches()) > 0 {
				t.Errorf("cluster %s: auto mTLS transport socket matches without a CA", cl.GetName())
			}
			ts := cl.GetTransportSocket()
			switch {
			case strings.HasSuffix(cl.GetName(), "|details.default.svc.cluster.local"), strings.HasSuffix(cl.GetName(), "|ratings.default.svc.cluster.local"):
				if ts == nil {
					t.Errorf("cluster %s: the SIMPLE/MUTUAL TLS (certificate files) of its DestinationRule is gone", cl.GetName())
				}
			case ts != nil:
				t.Errorf("cluster %s: transport socket %s without a CA", cl.GetName(), ts.GetName())
			}
		}
		for _, r := range res.Listeners {
			l := r.(*listenerv3.Listener)
			if !strings.HasPrefix(l.GetName(), "inbound|") {
				continue
			}
			if len(l.GetFilterChains()) != 1 || l.GetFilterChains()[0].GetTransportSocket() != nil || len(l.GetListenerFilters()) != 0 {
				t.Errorf("listener %s: want one plaintext chain and no listener filters under STRICT without a CA, got %d chains", l.GetName(), len(l.GetFilterChains()))
			}
		}
	}
	want := []string{
		"DestinationRule default/productpage: spec.trafficPolicy.tls.mode ISTIO_MUTUAL needs workload certificates, but discovery runs without a CA (--insecure-xds without --ca-dir): plaintext is sent instead",
		"PeerAuthentication istio-system/default: spec.mtls.mode STRICT needs workload certificates, but discovery runs without a CA (--insecure-xds without --ca-dir): plaintext is accepted instead",
	}
	for _, w := range want {
		if !slices.Contains(snap.Problems(), w) {
			t.Errorf("problems %q lack %q", snap.Problems(), w)
		}
	}
	if with := model.Build(objs, reg.View(), model.Options{}); with.Version() == snap.Version() || len(with.Problems()) != 0 {
		t.Errorf("with a CA: version %s (no CA %s), problems %q; want another version and no problems", with.Version(), snap.Version(), with.Problems())
	}
}

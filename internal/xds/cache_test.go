package xds_test

import (
	"bytes"
	"maps"
	"slices"
	"strings"
	"testing"

	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
	"github.com/bowline-mesh/bowline/internal/xds"
)

// TestGenerateCachedEqualsGenerate checks that a Cache shared by every
// proxy and snapshot of the golden cases never changes what is generated,
// including after rotations and with snapshots rebuilt from the same objects.
func TestGenerateCachedEqualsGenerate(t *testing.T) {
	cases := []struct {
		files []string
		proxy *model.Proxy
	}{
		{[]string{svcs}, sidecar},
		{[]string{svcs, drs, "bookinfo/virtual-service-all-v1.yaml"}, sidecar},
		{[]string{svcs, drs, "bookinfo/virtual-service-reviews-80-20.yaml"}, sidecar},
		{[]string{svcs, drs, "features/features.yaml"}, sidecar},
		{[]string{svcs, drs, gw}, router},
		{[]string{svcs, drs, "bookinfo/virtual-service-all-v1.yaml"}, grpcClient},
		{[]string{svcs, drs, "features/features.yaml"}, grpcClient},
	}
	// Snapshots are built once so that rounds hit the cache; every proxy
	// kind runs on every snapshot so that they share it.
	snaps := make([]*model.Snapshot, len(cases))
	for i, tc := range cases {
		snaps[i] = snapshot(t, tc.files...)
	}
	c := xds.NewCache()
	for round := range 3 {
		for i, tc := range cases {
			for _, p := range []*model.Proxy{sidecar, router, grpcClient} {
				if want, got := xds.Generate(snaps[i], p), xds.GenerateCached(snaps[i], p, c); !bytes.Equal(render(t, got), render(t, want)) {
					t.Fatalf("round %d %v %s: cached output differs", round, tc.files, p.ID)
				}
			}
			snap := snaps[i]
			want := xds.Generate(snap, tc.proxy)
			got := xds.GenerateCached(snap, tc.proxy, c)
			if !bytes.Equal(render(t, got), render(t, want)) {
				t.Fatalf("round %d %v %s: cached output differs", round, tc.files, tc.proxy.ID)
			}
			if !maps.Equal(got.Versions, want.Versions) {
				t.Fatalf("round %d %v: versions differ: %v vs %v", round, tc.files, got.Versions, want.Versions)
			}
			for typ, anys := range got.Wire {
				for i, a := range anys {
					if !bytes.Equal(a.GetValue(), want.Wire[typ][i].GetValue()) {
						t.Fatalf("round %d %v: wire form of %s[%d] differs", round, tc.files, typ, i)
					}
				}
			}
		}
		c.Rotate()
	}
}

// TestGenerateCachedAcrossConfig keeps the services (the same
// *registry.Service values, as the registry keeps them) while the rest of
// the configuration changes from snapshot to snapshot, so that everything
// a cached result depends on besides the service must be in its key.
func TestGenerateCachedAcrossConfig(t *testing.T) {
	base := load(t, svcs)
	reg := registry.New(nil)
	reg.SetConfig(base)
	for _, w := range registered {
		if err := reg.Register(w); err != nil {
			t.Fatal(err)
		}
	}
	view := reg.View()
	extras := [][]string{
		nil,
		{"mtls/strict.yaml"}, {"mtls/namespace-disable.yaml"}, {"mtls/disable.yaml"}, {"mtls/auto-mtls.yaml"},
		{"mtls/dr-tls.yaml"}, {"mtls/port-level.yaml"}, {"mtls/permissive.yaml"},
		{drs}, {drs, "bookinfo/virtual-service-all-v1.yaml"}, {drs, "bookinfo/virtual-service-reviews-80-20.yaml"},
		{drs, "features/features.yaml"}, {drs, gw}, nil, {"mtls/namespace-disable.yaml"},
	}
	c := xds.NewCache()
	for round := range 2 {
		for _, files := range extras {
			objs := append(slices.Clone(base), load(t, files...)...)
			snap := model.Build(objs, view, model.Options{})
			for _, p := range []*model.Proxy{sidecar, router, grpcClient} {
				want, got := xds.Generate(snap, p), xds.GenerateCached(snap, p, c)
				if !bytes.Equal(render(t, got), render(t, want)) || !maps.Equal(got.Versions, want.Versions) {
					t.Fatalf("round %d, config %v, proxy %s: cached output differs", round, files, p.ID)
				}
			}
			c.Rotate()
		}
	}
}

// TestCacheShares checks that the Cache does share work (the tests above
// would pass with a Cache that never hits): a second generation hands out
// the same encoded service clusters and load assignments, and two
// rotations without use drop every entry.
func TestCacheShares(t *testing.T) {
	snap := snapshot(t, svcs, drs, "bookinfo/virtual-service-all-v1.yaml")
	c := xds.NewCache()
	first, second := xds.GenerateCached(snap, sidecar, c), xds.GenerateCached(snap, sidecar, c)
	shared := 0
	for _, typ := range []string{resourcev3.ClusterType, resourcev3.EndpointType} {
		for i, r := range first.ByType()[typ] {
			name := cachev3.GetResourceName(r)
			if !strings.HasPrefix(name, "outbound|") {
				continue
			}
			if first.Wire[typ][i] != second.Wire[typ][i] {
				t.Errorf("%s %s: encoded again, want the cached Any", typ, name)
			}
			shared++
		}
	}
	if shared == 0 {
		t.Fatal("no outbound clusters generated")
	}
	if clusters, encoded := c.Len(); clusters == 0 || encoded < shared {
		t.Fatalf("Len() = %d, %d; want cluster sets and at least %d encodings", clusters, encoded, shared)
	}
	c.Rotate()
	c.Rotate()
	if clusters, encoded := c.Len(); clusters != 0 || encoded != 0 {
		t.Fatalf("after two unused rotations Len() = %d, %d, want 0, 0", clusters, encoded)
	}
}

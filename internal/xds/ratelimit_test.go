package xds_test

import (
	"testing"

	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/xds"
)

// TestRateLimitIsItsEnvoyFilter: a RateLimit (bowline.dev/v1alpha1) and the
// EnvoyFilter written for the same limit give the proxy the same xDS, byte
// for byte in JSON, so the proxy runs one rate limiter whichever way a
// limit was written (docs/adr/0006). Each case also checks the limit
// changed something, so an equality of two no-ops cannot pass.
func TestRateLimitIsItsEnvoyFilter(t *testing.T) {
	cases := []struct {
		name         string
		kind, filter string
		proxy        *model.Proxy
	}{
		{"local at a sidecar", "ratelimit/local.ratelimit.yaml", "ratelimit/local.envoyfilter.yaml", sidecar},
		// The task's two EnvoyFilters, as the e2e test applies them.
		{"global at the gateway", "ratelimit/global-gateway.ratelimit.yaml", "../../../test/e2e/testdata/ratelimit/global-rate-limit.yaml", router},
		{"local and global on a port", "ratelimit/ports.ratelimit.yaml", "ratelimit/ports.envoyfilter.yaml", sidecar},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := xds.Generate(snapshot(t, svcs, drs, gw), tc.proxy)
			kindSnap := snapshot(t, svcs, drs, gw, tc.kind)
			if p := kindSnap.Problems(); len(p) > 0 {
				t.Fatalf("problems: %v", p)
			}
			byKind := xds.Generate(kindSnap, tc.proxy)
			validateAll(t, byKind)
			byFilter := xds.Generate(snapshot(t, svcs, drs, gw, tc.filter), tc.proxy)
			if changes := renderChanges(t, base, byKind); string(changes) == "# nothing changed\n" {
				t.Fatal("the RateLimit changed nothing: the case tests nothing")
			}
			if got, want := renderChanges(t, byFilter, byKind), "# nothing changed\n"; string(got) != want {
				t.Errorf("the RateLimit's xDS differs from its EnvoyFilter's:\n%s", got)
			}
			cached := xds.GenerateCached(kindSnap, tc.proxy, xds.NewCache())
			if !equalVersions(cached, byKind) {
				t.Errorf("cached generation differs from Generate")
			}
		})
	}
}

// TestRateLimitAttachment: a RateLimit reaches only the proxies it
// selects, and on a port only that port's listener.
func TestRateLimitAttachment(t *testing.T) {
	snap := snapshot(t, svcs, drs, gw, "ratelimit/elsewhere.ratelimit.yaml")
	for _, p := range []*model.Proxy{sidecar, router} {
		base := xds.Generate(snapshot(t, svcs, drs, gw), p)
		if got := renderChanges(t, base, xds.Generate(snap, p)); string(got) != "# nothing changed\n" {
			t.Errorf("%s: RateLimits that do not select it changed its config:\n%s", p.ID, got)
		}
	}
	if snap.EnvoyFiltersFor(sidecar) == nil {
		t.Error("the namespace-wide RateLimit on port 9999 does not attach to productpage (its patches match no port, which is the point)")
	}
}

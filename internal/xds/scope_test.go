package xds_test

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/xds"
)

// scopeFleet is sidecars that differ as pods do (IP, labels, workload,
// service account, inbound ports, namespace, capture, explicit proxy).
func scopeFleet() []*model.Proxy {
	var out []*model.Proxy
	labelSets := []map[string]string{
		{"app": "productpage", "version": "v1"},
		{"app": "productpage", "version": "v1", "pod-template-hash": "abc"}, // no selector looks at this one
		{"app": "reviews", "version": "v2"},                                 // sourceLabels, DR selector, PeerAuthentication
		{"app": "reviews", "version": "v3"},
		{"app": "ratings", "version": "v1"}, // AuthorizationPolicy
		{"app": "details", "track": "canary"},
		nil,
	}
	for i, ns := range []string{"default", "other"} {
		for j, labels := range labelSets {
			for k, mode := range []model.InterceptionMode{"", model.InterceptionRedirect} {
				ip := fmt.Sprintf("10.1.%d.%d", i, 1+j*2+k)
				p := &model.Proxy{ID: fmt.Sprintf("sidecar~%s~w%d.%s~%s.svc.cluster.local", ip, j, ns, ns), Type: model.SidecarProxy,
					Namespace: ns, WorkloadName: fmt.Sprintf("w%d", j), ServiceAccount: fmt.Sprintf("sa-%d", j%3), Labels: labels,
					IPs: []string{ip}, InterceptionMode: mode, Inbound: []model.PortMapping{{Port: 9080, TargetPort: 19080 + uint32(j)}}}
				if j%3 == 0 {
					p.OutboundHTTP = "127.0.0.1:15080"
				}
				if j == 6 {
					p.Inbound = nil
				}
				out = append(out, p)
			}
		}
	}
	return out
}

// TestScopeKeyShares checks that the outbound part shared per ScopeKey is
// right for every proxy of the scope: with one Cache for the whole fleet,
// in two orders (so that different proxies build each scope's part), every
// proxy's output equals Generate's, byte for byte. A generator that reads a
// proxy field the key lacks would hand one proxy's output to another and
// fail here.
func TestScopeKeyShares(t *testing.T) {
	snap := snapshot(t, svcs, drs, "features/features.yaml", "capture/tcp.yaml", "scope/scope.yaml")
	fleet := scopeFleet()
	want := make([][]byte, len(fleet))
	for i, p := range fleet {
		want[i] = render(t, xds.Generate(snap, p))
	}
	for _, order := range [][]int{identity(len(fleet)), reversed(len(fleet))} {
		c := xds.NewCache()
		for _, i := range order {
			got := xds.GenerateCached(snap, fleet[i], c)
			if !bytes.Equal(render(t, got), want[i]) {
				t.Fatalf("%s: GenerateCached differs from Generate", fleet[i].ID)
			}
		}
	}
	keys := map[xds.ScopeKey]bool{}
	for _, p := range fleet {
		keys[xds.ScopeKeyFor(snap, p)] = true
	}
	// Some proxies differ only in what the key ignores.
	if len(keys) >= len(fleet) {
		t.Errorf("%d proxies have %d scope keys, want sharing", len(fleet), len(keys))
	}
}

// TestScopeKey pins what the key holds: what selects outbound config
// separates proxies; IP, workload, service account, inbound ports and labels
// no selector reads do not.
func TestScopeKey(t *testing.T) {
	snap := snapshot(t, svcs, drs, "features/features.yaml", "scope/scope.yaml")
	base := &model.Proxy{ID: "a", Type: model.SidecarProxy, Namespace: "default", WorkloadName: "a", ServiceAccount: "a",
		Labels: map[string]string{"app": "productpage"}, IPs: []string{"10.0.0.1"}}
	with := func(f func(p *model.Proxy)) *model.Proxy {
		c := *base
		c.Labels = map[string]string{"app": "productpage"}
		f(&c)
		return &c
	}
	same := []struct {
		name string
		p    *model.Proxy
	}{
		{"ip", with(func(p *model.Proxy) { p.IPs = []string{"10.0.0.2"} })},
		{"workload", with(func(p *model.Proxy) { p.WorkloadName, p.ID = "b", "b" })},
		{"service account", with(func(p *model.Proxy) { p.ServiceAccount = "b" })},
		{"inbound ports", with(func(p *model.Proxy) { p.Inbound = []model.PortMapping{{Port: 80, TargetPort: 8080}} })},
		{"unselected label", with(func(p *model.Proxy) { p.Labels["pod-template-hash"] = "x" })},
		{"other app no selector reads", with(func(p *model.Proxy) { p.Labels["app"] = "frontend" })},
	}
	for _, tc := range same {
		if a, b := xds.ScopeKeyFor(snap, base), xds.ScopeKeyFor(snap, tc.p); a != b {
			t.Errorf("%s: key %+v, want the base key %+v", tc.name, b, a)
		}
	}
	differ := []struct {
		name string
		p    *model.Proxy
	}{
		{"namespace", with(func(p *model.Proxy) { p.Namespace = "other" })},
		{"sourceLabels match", with(func(p *model.Proxy) { p.Labels["app"] = "reviews" })},
		{"DestinationRule selector", with(func(p *model.Proxy) { p.Labels["version"] = "v2" })},
		{"Sidecar selector", with(func(p *model.Proxy) { p.Labels["track"] = "canary" })},
		{"features.yaml sourceLabels", with(func(p *model.Proxy) { p.Labels["app"] = "canary" })},
		{"captured", with(func(p *model.Proxy) { p.InterceptionMode = model.InterceptionRedirect })},
		{"explicit proxy", with(func(p *model.Proxy) { p.OutboundHTTP = "127.0.0.1:15080" })},
	}
	for _, tc := range differ {
		if a, b := xds.ScopeKeyFor(snap, base), xds.ScopeKeyFor(snap, tc.p); a == b {
			t.Errorf("%s: same key %+v as the base, want another", tc.name, a)
		}
	}
	// Proxies of one scope share the encoded outbound resources.
	c := xds.NewCache()
	a, b := xds.GenerateCached(snap, base, c), xds.GenerateCached(snap, same[0].p, c)
	for _, typ := range []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.RouteType} {
		if !slices.Equal(a.Wire[typ], b.Wire[typ]) {
			t.Errorf("%s: proxies of one scope got different encodings, want the same Anys", typ)
		}
	}
}

func identity(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func reversed(n int) []int {
	out := identity(n)
	slices.Reverse(out)
	return out
}

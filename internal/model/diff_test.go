package model_test

import (
	"maps"
	"slices"
	"testing"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
)

const diffBase = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: default}
spec:
  hosts: [a.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1}, {address: 10.0.0.2}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: a, namespace: default}
spec:
  host: a.default.svc.cluster.local
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: default}
spec:
  hosts: [a]
  http: [{route: [{destination: {host: a, subset: v1}}]}]
`

// TestDiff checks how changes between two snapshots are classified: what
// generation may redo in part, and what forces a full regeneration.
func TestDiff(t *testing.T) {
	base := parse(t, diffBase)
	replace := func(kind, yaml string) []*config.Object {
		out := slices.DeleteFunc(slices.Clone(base), func(o *config.Object) bool { return o.GVK.Kind == kind })
		return append(out, parse(t, yaml)...)
	}
	cases := []struct {
		name       string
		objs       []*config.Object
		all        bool
		routeHosts []string
		clusters   []string
		endpoints  []string // addresses of changed services' endpoints
		policies   []model.PolicyAttachment
	}{
		{name: "nothing", objs: base},
		{name: "same content parsed again", objs: parse(t, diffBase)},
		{name: "virtual service weight", objs: replace(config.KindVirtualService, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: default}
spec:
  hosts: [a]
  http: [{route: [{destination: {host: a, subset: v1}, weight: 100}]}]
`), routeHosts: []string{"a.default.svc.cluster.local"}},
		{name: "virtual service removed", objs: slices.DeleteFunc(slices.Clone(base), func(o *config.Object) bool {
			return o.GVK.Kind == config.KindVirtualService
		}), routeHosts: []string{"a.default.svc.cluster.local"}},
		{name: "wildcard virtual service", objs: replace(config.KindVirtualService, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: default}
spec:
  hosts: ["*.default.svc.cluster.local"]
  http: [{route: [{destination: {host: a}}]}]
`), all: true},
		{name: "delegate virtual service", objs: append(slices.Clone(base), parse(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: d, namespace: default}
spec:
  http: [{route: [{destination: {host: a}}]}]
`)...), all: true},
		{name: "destination rule", objs: replace(config.KindDestinationRule, `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: a, namespace: default}
spec:
  host: a.default.svc.cluster.local
  subsets: [{name: v2, labels: {version: v2}}]
`), routeHosts: []string{"a.default.svc.cluster.local"}, clusters: []string{"a.default.svc.cluster.local"}},
		{name: "wildcard destination rule", objs: append(slices.Clone(base), parse(t, `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: w, namespace: default}
spec:
  host: "*.example.com"
`)...), all: true},
		{name: "destination rule of a routed-to host", objs: append(slices.Clone(base), parse(t, `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: b, namespace: default}
spec:
  host: b.default.svc.cluster.local
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: c, namespace: default}
spec:
  hosts: [c.example.com]
  http: [{route: [{destination: {host: b}}]}]
`)...), routeHosts: []string{"b.default.svc.cluster.local", "c.example.com"}, clusters: []string{"b.default.svc.cluster.local"}},
		{name: "inline endpoint weight", objs: replace(config.KindServiceEntry, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: default}
spec:
  hosts: [a.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1, weight: 3}, {address: 10.0.0.3}]
`), endpoints: []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}},
		{name: "service port added", objs: replace(config.KindServiceEntry, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: default}
spec:
  hosts: [a.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 81, name: http2, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1}, {address: 10.0.0.2}]
`), all: true},
		{name: "authorization policy with a selector", objs: append(slices.Clone(base), parse(t, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: default}
spec:
  selector: {matchLabels: {app: a}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin"]}}]}]
`)...), policies: []model.PolicyAttachment{{Namespace: "default", Labels: map[string]string{"app": "a"}}}},
		{name: "mesh-wide request authentication", objs: append(slices.Clone(base), parse(t, `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: istio-system}
spec:
  jwtRules: [{issuer: "https://issuer.example.com", jwksUri: "https://issuer.example.com/jwks.json"}]
`)...), policies: []model.PolicyAttachment{{Namespace: "istio-system", Mesh: true}}},
		{name: "workload peer authentication", objs: append(slices.Clone(base), parse(t, `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: p, namespace: default}
spec:
  selector: {matchLabels: {app: a}}
  mtls: {mode: STRICT}
`)...), policies: []model.PolicyAttachment{{Namespace: "default", Labels: map[string]string{"app": "a"}}}},
		{name: "namespace peer authentication (auto mTLS of clusters)", objs: append(slices.Clone(base), parse(t, `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec: {mtls: {mode: DISABLE}}
`)...), all: true},
	}
	prev := model.Build(base, registry.Build(base, nil), model.Options{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next := model.Build(tc.objs, registry.Build(tc.objs, nil), model.Options{})
			if tc.name == "nothing" {
				next = prev
			}
			ch := model.Diff(prev, next)
			if ch.All != tc.all {
				t.Fatalf("All = %v, want %v (%+v)", ch.All, tc.all, ch)
			}
			if got := slices.Sorted(maps.Keys(ch.RouteHosts)); !slices.Equal(got, tc.routeHosts) {
				t.Errorf("RouteHosts = %v, want %v", got, tc.routeHosts)
			}
			if got := slices.Sorted(maps.Keys(ch.ClusterHosts)); !slices.Equal(got, tc.clusters) {
				t.Errorf("ClusterHosts = %v, want %v", got, tc.clusters)
			}
			if got := slices.Sorted(maps.Keys(ch.Addresses)); !slices.Equal(got, tc.endpoints) {
				t.Errorf("Addresses = %v, want %v", got, tc.endpoints)
			}
			if !slices.EqualFunc(ch.Policies, tc.policies, func(a, b model.PolicyAttachment) bool {
				return a.Namespace == b.Namespace && a.Mesh == b.Mesh && a.TargetRef == b.TargetRef && maps.Equal(a.Labels, b.Labels)
			}) {
				t.Errorf("Policies = %+v, want %+v", ch.Policies, tc.policies)
			}
			if len(tc.endpoints) > 0 && len(ch.Endpoints) != 1 {
				t.Errorf("Endpoints = %v, want the one service", ch.Endpoints)
			}
		})
	}
}

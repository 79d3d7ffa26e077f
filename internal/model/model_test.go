package model_test

import (
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func parse(t *testing.T, yaml string) []*config.Object {
	t.Helper()
	res := config.Parse("test.yaml", []byte(yaml), config.ParseOptions{})
	if len(res.Problems) > 0 {
		t.Fatalf("parse: %v", res.Problems)
	}
	return res.Objects
}

func build(t *testing.T, yaml string) *model.Snapshot {
	t.Helper()
	objs := parse(t, yaml)
	return model.Build(objs, registry.Build(objs, nil), model.Options{})
}

func proxy(ns string, labels map[string]string) *model.Proxy {
	return &model.Proxy{Type: model.SidecarProxy, Namespace: ns, Labels: labels}
}

func TestResolveHost(t *testing.T) {
	cases := []struct{ host, ns, want string }{
		{"reviews", "default", "reviews.default.svc.cluster.local"},
		{"reviews.prod", "default", "reviews.prod"},
		{"reviews.prod.svc.cluster.local", "default", "reviews.prod.svc.cluster.local"},
		{"*", "default", "*"},
		{"*.example.com", "default", "*.example.com"},
		{"Reviews", "ns1", "reviews.ns1.svc.cluster.local"},
	}
	for _, c := range cases {
		t.Run(c.host, func(t *testing.T) {
			if got := model.ResolveHost(c.host, c.ns, "cluster.local"); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestHostMatches(t *testing.T) {
	cases := []struct {
		pattern, host string
		want          bool
	}{
		{"*", "a.b", true},
		{"*.example.com", "www.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "*.a.example.com", true},
		{"*.a.example.com", "*.example.com", false},
		{"a.example.com", "a.example.com", true},
		{"a.example.com", "b.example.com", false},
	}
	for _, c := range cases {
		t.Run(c.pattern+"|"+c.host, func(t *testing.T) {
			if got := model.HostMatches(c.pattern, c.host); got != c.want {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

const services = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: ns1}
spec: {hosts: [a.ns1.svc.cluster.local], ports: [{number: 80, name: http}], resolution: STATIC}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b, namespace: ns2}
spec: {hosts: [b.ns2.svc.cluster.local], ports: [{number: 80, name: http}], resolution: STATIC, exportTo: ["."]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: c, namespace: ns3}
spec: {hosts: [c.ns3.svc.cluster.local], ports: [{number: 80, name: http}], resolution: STATIC, exportTo: [ns1]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: ns3}
spec: {hosts: [api.example.com], ports: [{number: 443, name: tls}], resolution: DNS}
`

func hostnames(svcs []*registry.Service) []string {
	var out []string
	for _, s := range svcs {
		out = append(out, s.Hostname)
	}
	return out
}

func TestExportToAndSidecarScope(t *testing.T) {
	cases := []struct {
		name   string
		extra  string
		proxy  *model.Proxy
		expect []string
	}{
		{"ns1 sees exported", "", proxy("ns1", nil),
			[]string{"a.ns1.svc.cluster.local", "api.example.com", "c.ns3.svc.cluster.local"}},
		{"ns2 sees its own dot-export", "", proxy("ns2", nil),
			[]string{"a.ns1.svc.cluster.local", "api.example.com", "b.ns2.svc.cluster.local"}},
		{"namespace sidecar ./*", `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: ns1}
spec: {egress: [{hosts: ["./*"]}]}`, proxy("ns1", nil), []string{"a.ns1.svc.cluster.local"}},
		{"selector sidecar beats namespace default", `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: ns1}
spec: {egress: [{hosts: ["./*"]}]}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: special, namespace: ns1}
spec: {workloadSelector: {labels: {app: x}}, egress: [{hosts: ["ns3/api.example.com"]}]}`,
			proxy("ns1", map[string]string{"app": "x"}), []string{"api.example.com"}},
		{"root namespace default applies with . as proxy namespace", `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: istio-system}
spec: {egress: [{hosts: ["./*", "ns3/*"]}]}`, proxy("ns2", nil),
			[]string{"api.example.com", "b.ns2.svc.cluster.local"}},
		{"*/* allows everything visible", `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: ns1}
spec: {egress: [{hosts: ["*/*"]}]}`, proxy("ns1", nil),
			[]string{"a.ns1.svc.cluster.local", "api.example.com", "c.ns3.svc.cluster.local"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			snap := build(t, services+"\n---\n"+c.extra)
			if got := hostnames(snap.ServicesFor(c.proxy)); !slices.Equal(got, c.expect) {
				t.Errorf("got %v, want %v", got, c.expect)
			}
		})
	}
}

func TestDestinationRulePrecedence(t *testing.T) {
	const rules = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: root, namespace: istio-system}
spec: {host: "*.svc.cluster.local", subsets: [{name: root}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc-ns, namespace: ns1}
spec: {host: a, subsets: [{name: svcns}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: local-wild, namespace: ns2}
spec: {host: "*.ns1.svc.cluster.local", subsets: [{name: localwild}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: local, namespace: ns2}
spec: {host: a.ns1.svc.cluster.local, subsets: [{name: local}, {name: shared}], trafficPolicy: {loadBalancer: {simple: RANDOM}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: local-2, namespace: ns2}
spec: {host: a.ns1.svc.cluster.local, subsets: [{name: local2}, {name: shared}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: selected, namespace: ns2}
spec:
  host: a.ns1.svc.cluster.local
  workloadSelector: {matchLabels: {app: client}}
  subsets: [{name: selected}]
  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}
`
	cases := []struct {
		name     string
		proxy    *model.Proxy
		host     string
		wantFrom []string
		subsets  []string
	}{
		{"selector rule first, merged with namespace rules", proxy("ns2", map[string]string{"app": "client"}), "a.ns1.svc.cluster.local",
			[]string{"ns2/selected", "ns2/local", "ns2/local-2"}, []string{"selected", "local", "shared", "local2"}},
		{"namespace-local exact beats local wildcard", proxy("ns2", nil), "a.ns1.svc.cluster.local",
			[]string{"ns2/local", "ns2/local-2"}, []string{"local", "shared", "local2"}},
		{"local wildcard beats service namespace", proxy("ns2", nil), "z.ns1.svc.cluster.local",
			[]string{"ns2/local-wild"}, []string{"localwild"}},
		{"service namespace rule", proxy("ns3", nil), "a.ns1.svc.cluster.local",
			[]string{"ns1/svc-ns"}, []string{"svcns"}},
		{"root namespace fallback", proxy("ns3", nil), "q.ns9.svc.cluster.local",
			[]string{"istio-system/root"}, []string{"root"}},
	}
	snap := build(t, rules)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ns := "ns1"
			if c.host == "q.ns9.svc.cluster.local" {
				ns = "ns9"
			}
			dr := snap.DestinationRuleFor(c.proxy, c.host, ns)
			if dr == nil {
				t.Fatal("no rule")
			}
			if !slices.Equal(dr.From, c.wantFrom) {
				t.Errorf("from: got %v, want %v", dr.From, c.wantFrom)
			}
			var subs []string
			for _, s := range dr.Subsets {
				subs = append(subs, s.GetName())
			}
			if !slices.Equal(subs, c.subsets) {
				t.Errorf("subsets: got %v, want %v", subs, c.subsets)
			}
		})
	}
	if got := snap.DestinationRuleFor(proxy("ns2", map[string]string{"app": "client"}), "a.ns1.svc.cluster.local", "ns1"); got.TrafficPolicy.GetLoadBalancer().GetSimple().String() != "LEAST_REQUEST" {
		t.Errorf("selector rule's traffic policy should win, got %v", got.TrafficPolicy)
	}
}

func TestVirtualServices(t *testing.T) {
	const vss = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: root, namespace: ns1}
spec:
  hosts: [a]
  http:
  - match: [{uri: {prefix: /api}}]
    delegate: {name: child, namespace: ns2}
  - route: [{destination: {host: a}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: child, namespace: ns2}
spec:
  http:
  - match: [{uri: {prefix: /api/v2}, headers: {x: {exact: "1"}}}]
    route: [{destination: {host: b, subset: v2}}]
  - match: [{uri: {prefix: /other}}]
    route: [{destination: {host: b}}]
  - route: [{destination: {host: b, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: private, namespace: ns3}
spec:
  hosts: [c]
  exportTo: ["."]
  http: [{route: [{destination: {host: c}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: gw-only, namespace: ns1}
spec:
  hosts: [d.example.com]
  gateways: [ingress, ns9/other]
  http: [{route: [{destination: {host: d}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: both, namespace: ns1}
spec:
  hosts: [e.example.com]
  gateways: [ingress, mesh]
  http: [{route: [{destination: {host: e}}]}]
`
	snap := build(t, vss)
	refs := func(vs []*model.VirtualService) []string {
		var out []string
		for _, v := range vs {
			out = append(out, v.Ref())
		}
		return out
	}
	t.Run("mesh gateway default and exportTo", func(t *testing.T) {
		if got, want := refs(snap.VirtualServicesFor(proxy("ns1", nil), model.MeshGateway)), []string{"ns1/both", "ns1/root"}; !slices.Equal(got, want) {
			t.Errorf("ns1: got %v, want %v", got, want)
		}
		if got, want := refs(snap.VirtualServicesFor(proxy("ns3", nil), model.MeshGateway)), []string{"ns1/both", "ns1/root", "ns3/private"}; !slices.Equal(got, want) {
			t.Errorf("ns3: got %v, want %v", got, want)
		}
	})
	t.Run("gateway binding", func(t *testing.T) {
		if got, want := refs(snap.VirtualServicesFor(proxy("ns1", nil), "ns1/ingress")), []string{"ns1/both", "ns1/gw-only"}; !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
		if got, want := refs(snap.VirtualServicesFor(proxy("ns1", nil), "ns9/other")), []string{"ns1/gw-only"}; !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("delegation", func(t *testing.T) {
		root := snap.VirtualServicesFor(proxy("ns1", nil), model.MeshGateway)[1]
		if root.Hosts[0] != "a.ns1.svc.cluster.local" {
			t.Fatalf("host: %v", root.Hosts)
		}
		// /api/v2 (within /api) keeps its header; /other conflicts with /api
		// and is dropped; the catch-all inherits /api; then the root's own route.
		if len(root.HTTP) != 3 {
			t.Fatalf("routes: got %d, want 3: %v", len(root.HTTP), root.HTTP)
		}
		r0 := root.HTTP[0]
		if r0.GetMatch()[0].GetUri().GetPrefix() != "/api/v2" || r0.GetMatch()[0].GetHeaders()["x"].GetExact() != "1" {
			t.Errorf("route 0 match: %v", r0.GetMatch())
		}
		if got := r0.GetRoute()[0].GetDestination().GetHost(); got != "b.ns2.svc.cluster.local" {
			t.Errorf("delegate destination resolves in the delegate's namespace: got %q", got)
		}
		if got := root.HTTP[1].GetMatch()[0].GetUri().GetPrefix(); got != "/api" {
			t.Errorf("catch-all delegate route inherits root match: got %q", got)
		}
		if got := root.HTTP[2].GetRoute()[0].GetDestination().GetHost(); got != "a.ns1.svc.cluster.local" {
			t.Errorf("root route: %q", got)
		}
	})
}

func TestGatewaysFor(t *testing.T) {
	snap := build(t, `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: ns1}
spec: {selector: {istio: ingressgateway}, servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egress, namespace: ns1}
spec: {selector: {istio: egressgateway}, servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]}
`)
	router := &model.Proxy{Type: model.Router, Namespace: "istio-system", Labels: map[string]string{"istio": "ingressgateway"}}
	gws := snap.GatewaysFor(router)
	if len(gws) != 1 || gws[0].Ref() != "ns1/ingress" {
		t.Errorf("got %v", gws)
	}
	if len(snap.GatewaysFor(proxy("ns1", map[string]string{"istio": "ingressgateway"}))) != 0 {
		t.Error("sidecars serve no gateways")
	}
}

func TestVersion(t *testing.T) {
	a := build(t, services)
	b := build(t, services)
	if a.Version() != b.Version() {
		t.Errorf("same input, versions differ: %s %s", a.Version(), b.Version())
	}
	c := build(t, services+"\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x, namespace: ns1}\nspec: {hosts: [a], http: [{route: [{destination: {host: a}}]}]}\n")
	if c.Version() == a.Version() {
		t.Error("changed input, same version")
	}
}

func TestVersionWithMemo(t *testing.T) {
	objs := parse(t, services)
	view := registry.Build(objs, nil)
	want := model.Build(objs, view, model.Options{}).Version()
	memo := model.NewMemo()
	for i := range 3 {
		if got := model.Build(objs, view, model.Options{Memo: memo}).Version(); got != want {
			t.Fatalf("build %d with memo: version %s, want %s", i, got, want)
		}
	}
	more := append(parse(t, "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x, namespace: ns1}\nspec: {hosts: [a], http: [{route: [{destination: {host: a}}]}]}\n"), objs...)
	if got := model.Build(more, view, model.Options{Memo: memo}).Version(); got == want || got != model.Build(more, view, model.Options{}).Version() {
		t.Errorf("changed input with memo: version %s (unchanged %s)", got, want)
	}
}

func TestMeshConfig(t *testing.T) {
	defaults := build(t, "")
	if m := defaults.Mesh(); m.Source != "defaults" || !m.EnableTracing || m.TraceSampling != 1 || m.OutboundTrafficPolicy != model.AllowAny ||
		m.RootNamespace != "istio-system" || m.TrustDomain != "cluster.local" || m.Provider("prometheus") == nil {
		t.Errorf("defaults = %+v", m)
	}
	s := build(t, `apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    rootNamespace: mesh-root
    trustDomain: example.org
    accessLogFile: /dev/stdout
    accessLogEncoding: JSON
    outboundTrafficPolicy: {mode: REGISTRY_ONLY}
    defaultConfig: {tracing: {sampling: 100}}
    extensionProviders:
    - name: otel
      opentelemetry: {service: observability/jaeger.local, port: 4317}
    defaultProviders: {tracing: [otel]}
`)
	m := s.Mesh()
	if m.Source != "ConfigMap istio-system/istio at test.yaml:1" {
		t.Errorf("source = %q", m.Source)
	}
	if m.TraceSampling != 100 || m.OutboundTrafficPolicy != model.RegistryOnly || m.TrustDomain != "example.org" ||
		m.AccessLogFile != "/dev/stdout" || m.AccessLogEncoding != model.AccessLogJSON || strings.Join(m.DefaultTracing, ",") != "otel" {
		t.Errorf("mesh = %+v", m)
	}
	if s.RootNamespace() != "mesh-root" {
		t.Errorf("root namespace = %q, want MeshConfig's mesh-root", s.RootNamespace())
	}
	p := m.Provider("otel")
	if p == nil || p.Kind != model.ProviderOpenTelemetry || p.Service != "jaeger.local" || p.Namespace != "observability" || p.Port != 4317 {
		t.Errorf("provider otel = %+v", p)
	}
	if s.Version() == defaults.Version() {
		t.Errorf("the mesh config does not change the snapshot version")
	}
}

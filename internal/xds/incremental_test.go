package xds_test

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
	"github.com/bowline-mesh/bowline/internal/xds"
)

// changeMesh is the configuration TestChangeDrivenEqualsRegeneration edits:
// objects by key, each kept as parsed until it changes (as the config
// directory keeps them), and a registry of workloads.
type changeMesh struct {
	t       *testing.T
	objects map[string]*config.Object
	yaml    map[string]string
	reg     *registry.Registry
}

func (m *changeMesh) set(key, yaml string) {
	m.t.Helper()
	res := config.Parse(key+".yaml", []byte(yaml), config.ParseOptions{})
	if len(res.Problems) > 0 || len(res.Objects) != 1 {
		m.t.Fatalf("%s: %v", key, res.Problems)
	}
	m.objects[key] = res.Objects[0]
	m.yaml[key] = yaml
}

// touch parses key's object again, unchanged: a new value of the same
// content, as a config file holding it and a changed object gives.
func (m *changeMesh) touch(key string) {
	if y, ok := m.yaml[key]; ok {
		if _, ok := m.objects[key]; ok {
			m.set(key, y)
		}
	}
}

func (m *changeMesh) list() []*config.Object {
	out := make([]*config.Object, 0, len(m.objects))
	for _, k := range slices.Sorted(maps.Keys(m.objects)) {
		out = append(out, m.objects[k])
	}
	return out
}

// changeService is ServiceEntry i: HTTP only for even i, HTTP and TCP for
// odd i; every third has an address (the others get auto VIPs when captured).
func changeService(i int) string {
	ports := "[{number: 8080, name: http, protocol: HTTP}]"
	if i%2 == 1 {
		ports = "[{number: 8080, name: http, protocol: HTTP}, {number: 9000, name: tcp, protocol: TCP}]"
	}
	addr := ""
	if i%3 == 0 {
		addr = fmt.Sprintf("  addresses: [10.200.0.%d]\n", i+1)
	}
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc-%[1]d, namespace: default}
spec:
  hosts: [svc-%[1]d.default.svc.cluster.local]
%[3]s  location: MESH_INTERNAL
  resolution: STATIC
  ports: %[2]s
  workloadSelector: {labels: {app: svc-%[1]d}}
`, i, ports, addr)
}

func changeVirtualService(i, w int, tcp bool) string {
	extra := ""
	if tcp && i%2 == 1 {
		extra = fmt.Sprintf("  tcp:\n  - route: [{destination: {host: svc-%d.default.svc.cluster.local, subset: v2}}]\n", i)
	}
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc-%[1]d, namespace: default}
spec:
  hosts: [svc-%[1]d.default.svc.cluster.local]
  http:
  - route:
    - {destination: {host: svc-%[1]d.default.svc.cluster.local, subset: v1}, weight: %[2]d}
    - {destination: {host: svc-%[1]d.default.svc.cluster.local, subset: v2}, weight: %[3]d}
%[4]s`, i, w, 100-w, extra)
}

func changeDestinationRule(i, subsets int, hash bool) string {
	var s strings.Builder
	for k := range subsets {
		fmt.Fprintf(&s, "  - {name: v%d, labels: {version: v%d}}\n", k+1, k+1)
	}
	lb := "{simple: LEAST_REQUEST}"
	if hash { // routes to the host carry its hash policy
		lb = "{consistentHash: {httpHeaderName: x-user}}"
	}
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc-%[1]d, namespace: default}
spec:
  host: svc-%[1]d.default.svc.cluster.local
  trafficPolicy: {loadBalancer: %[3]s}
  subsets:
%[2]s`, i, s.String(), lb)
}

// crossVirtualService routes svc-5's host to svc-i: its routes carry
// svc-i's hash policy.
func crossVirtualService(i int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cross, namespace: default}
spec:
  hosts: [svc-5.default.svc.cluster.local]
  http:
  - route: [{destination: {host: svc-%d.default.svc.cluster.local}}]
`, i)
}

// inlineService is a ServiceEntry with its endpoints inline: an edit of
// their weights is an endpoint change of the service.
func inlineService(w int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: inline, namespace: default}
spec:
  hosts: [inline.example.com]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.6.0.1, weight: %d}, {address: 10.7.0.2}]
`, w)
}

// changePolicy is security policy kind k (0 AuthorizationPolicy, 1
// RequestAuthentication, 2 PeerAuthentication with a selector) in
// namespace ns (istio-system: mesh-wide) selecting app (none: the whole
// namespace; a PeerAuthentication always selects), variant v.
func changePolicy(k int, ns, app string, v int) string {
	sel := ""
	if app != "" || k == 2 {
		if app == "" {
			app = "c0"
		}
		sel = fmt.Sprintf("  selector: {matchLabels: {app: %s}}\n", app)
	}
	switch k {
	case 0:
		return fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: authz, namespace: %s}
spec:
%s  action: %s
  rules:
  - to: [{operation: {paths: ["/admin/%d"]}}]
`, ns, sel, []string{"ALLOW", "DENY"}[v%2], v)
	case 1:
		return fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: %s}
spec:
%s  jwtRules:
  - issuer: "https://issuer-%d.example.com"
    jwksUri: "https://issuer.example.com/.well-known/jwks.json"
`, ns, sel, v)
	}
	return fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: peer, namespace: %s}
spec:
%s  mtls: {mode: %s}
  portLevelMtls: {8080: {mode: %s}}
`, ns, sel, []string{"STRICT", "PERMISSIVE", "DISABLE"}[v%3], []string{"PERMISSIVE", "DISABLE", "STRICT", "UNSET"}[v%4])
}

// namespacePeerAuthentication is a namespace-wide PeerAuthentication:
// auto mTLS of every cluster to the namespace follows it (a full push).
func namespacePeerAuthentication(mode string) string {
	return fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec: {mtls: {mode: %s}}
`, mode)
}

const changeSidecar = `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: other}
spec:
  egress: [{hosts: ["./*", "default/svc-0.default.svc.cluster.local", "default/svc-1.default.svc.cluster.local", "default/svc-2.default.svc.cluster.local"]}]
`

// TestChangeDrivenEqualsRegeneration applies random sequences of config
// and endpoint changes and checks, after each, that what one Cache
// generates for a fleet of distinct sidecars (scopes shared and not,
// captured, explicit proxy, some at an endpoint's IP), carrying each part
// over from the last snapshot where the change allows, equals a full
// generation from scratch: the same resources, bytes and versions. It also
// checks that the change-driven path is taken.
func TestChangeDrivenEqualsRegeneration(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runChangeDriven(t, seed, 40) })
	}
}

func runChangeDriven(t *testing.T, seed uint64, steps int) {
	rnd := rand.New(rand.NewPCG(seed, 7))
	m := &changeMesh{t: t, objects: map[string]*config.Object{}, yaml: map[string]string{}, reg: registry.New(nil)}
	const nSvc = 6
	for i := range nSvc {
		m.set(fmt.Sprintf("se-%d", i), changeService(i))
		m.set(fmt.Sprintf("dr-%d", i), changeDestinationRule(i, 2, false))
	}
	m.set("vs-0", changeVirtualService(0, 80, false))
	m.set("inline", inlineService(1))
	m.set("vs-cross", crossVirtualService(0))
	m.set("vs-1", changeVirtualService(1, 50, true))
	workload := func(i, k int) registry.Workload {
		return registry.Workload{ID: fmt.Sprintf("w-%d-%d", i, k), Name: fmt.Sprintf("svc-%d", i), Namespace: "default",
			Address: fmt.Sprintf("10.9.%d.%d", i, k+1), Ports: map[string]uint32{"http": 8080, "tcp": 9000},
			Labels: map[string]string{"app": fmt.Sprintf("svc-%d", i), "version": fmt.Sprintf("v%d", 1+k%2)}, Healthy: true,
			ServiceAccount: fmt.Sprintf("sa-%d", k%3)} // a third account comes and goes: the clusters' SANs change
	}
	m.reg.SetConfig(m.list())
	for i := range nSvc {
		for k := range 2 {
			if err := m.reg.Register(workload(i, k)); err != nil {
				t.Fatal(err)
			}
		}
	}
	var fleet []*model.Proxy
	for j, ns := range []string{"default", "default", "other"} {
		for k, mode := range []model.InterceptionMode{"", model.InterceptionRedirect} {
			ip := fmt.Sprintf("10.7.%d.%d", j, k+1)
			if j == 1 {
				ip = fmt.Sprintf("10.9.%d.%d", k, 1) // the workload w-k-0: inbound metadata names svc-k
			}
			p := &model.Proxy{ID: fmt.Sprintf("sidecar~%s~c%d.%s~%s.svc.cluster.local", ip, j, ns, ns), Type: model.SidecarProxy,
				Namespace: ns, WorkloadName: fmt.Sprintf("c%d", j), Labels: map[string]string{"app": fmt.Sprintf("c%d", j)},
				IPs: []string{ip}, InterceptionMode: mode, Inbound: []model.PortMapping{{Port: 8080, TargetPort: 18080}}}
			if k == 0 && j != 1 {
				p.OutboundHTTP = "127.0.0.1:15080"
			}
			fleet = append(fleet, p)
		}
	}

	c := xds.NewCache()
	opts := model.Options{Memo: model.NewMemo()}
	var done []string
	check := func() {
		t.Helper()
		c.Rotate()
		snap := model.Build(m.list(), m.reg.View(), opts)
		for _, p := range fleet {
			want, got := xds.Generate(snap, p), xds.GenerateCached(snap, p, c)
			if d := wireDiff(want, got); d != "" {
				t.Fatalf("after %s: proxy %s: %s", strings.Join(done, "; "), p.ID, d)
			}
		}
	}
	check()
	for range steps {
		i := rnd.IntN(nSvc)
		var what string
		switch rnd.IntN(16) {
		case 0, 1:
			w := 10 * rnd.IntN(11)
			tcp := rnd.IntN(2) == 0
			m.set(fmt.Sprintf("vs-%d", i), changeVirtualService(i, w, tcp))
			m.touch(fmt.Sprintf("dr-%d", i)) // the same file, as the benchmark's routing files
			if rnd.IntN(2) == 0 {
				m.touch(fmt.Sprintf("se-%d", i)) // a new service value of the same content
			}
			what = fmt.Sprintf("virtual service %d weight %d tcp %v", i, w, tcp)
		case 2:
			delete(m.objects, fmt.Sprintf("vs-%d", i))
			what = fmt.Sprintf("virtual service %d removed", i)
		case 3:
			if rnd.IntN(2) == 0 {
				i = 0 // the host svc-5 routes to (at first)
			}
			n, hash := 2+rnd.IntN(2), rnd.IntN(2) == 0
			m.set(fmt.Sprintf("dr-%d", i), changeDestinationRule(i, n, hash))
			what = fmt.Sprintf("destination rule %d subsets %d hash %v", i, n, hash)
		case 12:
			m.set("vs-cross", crossVirtualService(i))
			what = fmt.Sprintf("svc-5 routed to svc-%d", i)
		case 4:
			key := fmt.Sprintf("se-%d", i)
			if _, ok := m.objects[key]; ok && i > 1 {
				delete(m.objects, key)
				what = fmt.Sprintf("service %d removed", i)
			} else {
				m.set(key, changeService(i))
				what = fmt.Sprintf("service %d added", i)
			}
		case 5:
			if _, ok := m.objects["sidecar"]; ok {
				delete(m.objects, "sidecar")
				what = "sidecar removed"
			} else {
				m.set("sidecar", changeSidecar)
				what = "sidecar added"
			}
		case 6:
			w := workload(i, 2+rnd.IntN(3))
			w.Weight = uint32(1 + rnd.IntN(5))
			if err := m.reg.Register(w); err != nil {
				t.Fatal(err)
			}
			what = fmt.Sprintf("endpoint %s weight %d", w.ID, w.Weight)
		case 7, 8:
			id := fmt.Sprintf("w-%d-%d", i, rnd.IntN(2))
			healthy := rnd.IntN(2) == 0
			if err := m.reg.SetHealth(id, healthy); err != nil {
				t.Fatal(err)
			}
			what = fmt.Sprintf("endpoint %s healthy %v", id, healthy)
		case 9:
			id := fmt.Sprintf("w-%d-%d", i, 2+rnd.IntN(3))
			if err := m.reg.Deregister(id); err != nil {
				what = "endpoint " + id + " not registered"
				break
			}
			what = "endpoint " + id + " deregistered"
		case 11:
			w := 1 + rnd.IntN(5)
			m.set("inline", inlineService(w))
			what = fmt.Sprintf("inline endpoint weight %d", w)
		case 13, 14: // a security policy: the inbound part of the sidecars it selects
			k := rnd.IntN(3)
			key := fmt.Sprintf("policy-%d", k)
			if _, ok := m.objects[key]; ok && rnd.IntN(3) == 0 {
				delete(m.objects, key)
				what = key + " removed"
				break
			}
			ns := []string{"default", "other", "istio-system"}[rnd.IntN(3)]
			app := []string{"", "c0", "c1", "c2", "nobody"}[rnd.IntN(5)]
			v := rnd.IntN(6)
			m.set(key, changePolicy(k, ns, app, v))
			what = fmt.Sprintf("%s in %s selecting %q variant %d", key, ns, app, v)
		case 15:
			mode := []string{"STRICT", "PERMISSIVE", "DISABLE"}[rnd.IntN(3)]
			m.set("peer-ns", namespacePeerAuthentication(mode))
			what = "namespace peer authentication " + mode
		case 10: // a workload at a proxy's IP joins or leaves a service: that proxy's inbound metadata changes
			w := workload(i, 9)
			w.Address = "10.7.0.1"
			if err := m.reg.Deregister(w.ID); err == nil {
				what = "endpoint " + w.ID + " at a proxy deregistered"
				break
			}
			if err := m.reg.Register(w); err != nil {
				t.Fatal(err)
			}
			what = "endpoint " + w.ID + " at a proxy registered"
		}
		if !strings.HasPrefix(what, "endpoint") { // config: the registry reads it too
			m.reg.SetConfig(m.list())
		}
		done = append(done, what)
		check()
	}
	st := c.ChangeStats()
	if st.ScopesUpdated == 0 || st.InboundKept == 0 || st.ScopesBuilt == 0 || st.InboundBuilt == 0 {
		t.Fatalf("change stats %+v: want scopes and inbound parts both carried over and built", st)
	}
}

// wireDiff describes the first difference between two generations' wire
// forms and versions, "" when they are equal.
func wireDiff(want, got xds.Resources) string {
	for _, typ := range slices.Sorted(maps.Keys(want.Wire)) {
		w, g := want.Wire[typ], got.Wire[typ]
		if len(w) != len(g) {
			return fmt.Sprintf("%s: %d resources, want %d", typ, len(g), len(w))
		}
		for i := range w {
			if !bytes.Equal(w[i].GetValue(), g[i].GetValue()) {
				return fmt.Sprintf("%s[%d] differs", typ, i)
			}
		}
		if want.Versions[typ] != got.Versions[typ] {
			return fmt.Sprintf("%s: version %s, want %s", typ, got.Versions[typ], want.Versions[typ])
		}
	}
	return ""
}

// TestChangeDrivenHashPolicy: a DestinationRule's consistent hash reaches
// the routes of another host that routes to it when only the rule changes.
func TestChangeDrivenHashPolicy(t *testing.T) {
	m := &changeMesh{t: t, objects: map[string]*config.Object{}, yaml: map[string]string{}, reg: registry.New(nil)}
	for i := range 6 {
		m.set(fmt.Sprintf("se-%d", i), changeService(i))
	}
	m.set("dr-0", changeDestinationRule(0, 2, false))
	m.set("vs-cross", crossVirtualService(0))
	m.reg.SetConfig(m.list())
	p := &model.Proxy{ID: "sidecar~10.7.0.1~c.default~default.svc.cluster.local", Type: model.SidecarProxy, Namespace: "default",
		IPs: []string{"10.7.0.1"}, Inbound: []model.PortMapping{{Port: 8080, TargetPort: 18080}}}
	c, opts := xds.NewCache(), model.Options{Memo: model.NewMemo()}
	xds.GenerateCached(model.Build(m.list(), m.reg.View(), opts), p, c)
	m.set("dr-0", changeDestinationRule(0, 2, true))
	m.reg.SetConfig(m.list())
	c.Rotate()
	snap := model.Build(m.list(), m.reg.View(), opts)
	want, got := xds.Generate(snap, p), xds.GenerateCached(snap, p, c)
	if d := wireDiff(want, got); d != "" {
		t.Fatal(d)
	}
	if !strings.Contains(string(render(t, want)), "x-user") {
		t.Fatal("no route carries the hash policy: the case tests nothing")
	}
	if st := c.ChangeStats(); st.ScopesUpdated != 1 {
		t.Fatalf("change stats %+v: want the scope updated, not rebuilt", st)
	}
}

// TestChangeDrivenSecurityPolicy: a security policy selecting one workload
// regenerates that sidecar's inbound part only; every scope's outbound
// part and the other sidecars' inbound parts are carried over, and each
// proxy's resources equal a full generation.
func TestChangeDrivenSecurityPolicy(t *testing.T) {
	m := &changeMesh{t: t, objects: map[string]*config.Object{}, yaml: map[string]string{}, reg: registry.New(nil)}
	for i := range 3 {
		m.set(fmt.Sprintf("se-%d", i), changeService(i))
	}
	m.reg.SetConfig(m.list())
	var fleet []*model.Proxy
	for j := range 2 {
		ip := fmt.Sprintf("10.7.0.%d", j+1)
		fleet = append(fleet, &model.Proxy{ID: fmt.Sprintf("sidecar~%s~c%d.default~default.svc.cluster.local", ip, j), Type: model.SidecarProxy,
			Namespace: "default", WorkloadName: fmt.Sprintf("c%d", j), Labels: map[string]string{"app": fmt.Sprintf("c%d", j)},
			IPs: []string{ip}, Inbound: []model.PortMapping{{Port: 8080, TargetPort: 18080}}})
	}
	c, opts := xds.NewCache(), model.Options{Memo: model.NewMemo()}
	gen := func() []xds.Resources {
		t.Helper()
		c.Rotate()
		snap := model.Build(m.list(), m.reg.View(), opts)
		var out []xds.Resources
		for _, p := range fleet {
			want, got := xds.Generate(snap, p), xds.GenerateCached(snap, p, c)
			if d := wireDiff(want, got); d != "" {
				t.Fatalf("proxy %s: %s", p.ID, d)
			}
			out = append(out, got)
		}
		return out
	}
	const lds = "type.googleapis.com/envoy.config.listener.v3.Listener"
	before := gen()
	for _, tc := range []struct{ name, key, yaml string }{
		{"authorization policy", "policy-0", changePolicy(0, "default", "c0", 1)},
		{"request authentication", "policy-1", changePolicy(1, "default", "c0", 1)},
		{"peer authentication with a selector", "policy-2", changePolicy(2, "default", "c0", 1)},
		{"authorization policy changed", "policy-0", changePolicy(0, "default", "c0", 2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m.set(tc.key, tc.yaml)
			m.reg.SetConfig(m.list())
			st0 := c.ChangeStats()
			after := gen()
			st := c.ChangeStats()
			if after[0].Versions[lds] == before[0].Versions[lds] {
				t.Errorf("c0's listeners did not change: the policy has no effect, the case tests nothing")
			}
			for typ, v := range before[1].Versions {
				if after[1].Versions[typ] != v {
					t.Errorf("c1 (not selected): %s version changed", typ)
				}
			}
			if built, kept := st.InboundBuilt-st0.InboundBuilt, st.InboundKept-st0.InboundKept; built != 1 || kept != 1 {
				t.Errorf("inbound parts built %d, kept %d; want c0's built and c1's kept", built, kept)
			}
			if st.ScopesBuilt != st0.ScopesBuilt {
				t.Errorf("scopes built %d times; want the outbound part carried over", st.ScopesBuilt-st0.ScopesBuilt)
			}
			before = after
		})
	}
	// A namespace-wide PeerAuthentication decides auto mTLS to the
	// namespace's services: everything is generated again.
	m.set("peer-ns", namespacePeerAuthentication("DISABLE"))
	m.reg.SetConfig(m.list())
	st0 := c.ChangeStats()
	gen()
	if st := c.ChangeStats(); st.ScopesBuilt == st0.ScopesBuilt {
		t.Errorf("namespace PeerAuthentication: scope not built again (stats %+v)", st)
	}
}

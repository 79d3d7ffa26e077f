package registry_test

import (
	"encoding/json"
	"errors"
	"maps"
	"testing"

	"go.uber.org/goleak"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const entries = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: http, targetPort: 9090}]
  resolution: STATIC
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec: {address: 10.0.0.1, labels: {app: reviews, version: v1}, ports: {http: 19080}, locality: r/z, weight: 3}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-other-ns, namespace: other}
spec: {address: 10.0.0.9, labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
spec:
  hosts: [a.example.com, b.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 443, name: tls}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: inline, namespace: default}
spec:
  hosts: [db.internal]
  ports: [{number: 5432, name: tcp-pg}]
  resolution: STATIC
  endpoints: [{address: 10.1.0.2}, {address: 10.1.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: none, namespace: default}
spec:
  hosts: [any.internal]
  ports: [{number: 80, name: http}]
  resolution: NONE
  endpoints: [{address: 10.1.0.3}]
`

func parse(t *testing.T) []*config.Object {
	t.Helper()
	res := config.Parse("test.yaml", []byte(entries), config.ParseOptions{})
	if len(res.Problems) > 0 {
		t.Fatal(res.Problems)
	}
	return res.Objects
}

func find(v *registry.View, host string) *registry.Service {
	for _, s := range v.Services() {
		if s.Hostname == host {
			return s
		}
	}
	return nil
}

func TestBuild(t *testing.T) {
	v := registry.Build(parse(t), []registry.Workload{
		{Name: "reviews-v2", Namespace: "default", Address: "10.0.0.2", Labels: map[string]string{"app": "reviews", "version": "v2"}},
		{Name: "reviews-x", Namespace: "other", Address: "10.0.0.3", Labels: map[string]string{"app": "reviews"}},
	})
	t.Run("selector picks WorkloadEntries and registrations in the namespace", func(t *testing.T) {
		s := find(v, "reviews.default.svc.cluster.local")
		if len(s.Endpoints) != 2 {
			t.Fatalf("endpoints: %d", len(s.Endpoints))
		}
		e1, e2 := s.Endpoints[0], s.Endpoints[1]
		if e1.WorkloadName != "reviews-v1" || e1.PortFor(s.Ports[0]) != 19080 || e1.Weight != 3 || e1.Locality != "r/z" || !e1.Healthy {
			t.Errorf("entry endpoint: %+v", e1)
		}
		if e2.WorkloadName != "reviews-v2" || e2.PortFor(s.Ports[0]) != 9090 || e2.Healthy {
			t.Errorf("registered endpoint (target port, not yet healthy): %+v", e2)
		}
	})
	t.Run("DNS entry per host resolves itself", func(t *testing.T) {
		for _, h := range []string{"a.example.com", "b.example.com"} {
			s := find(v, h)
			if s == nil || s.Resolution != registry.ResolutionDNS || !s.MeshExternal || len(s.Endpoints) != 1 || s.Endpoints[0].Address != h {
				t.Errorf("%s: %+v", h, s)
			}
		}
	})
	t.Run("inline endpoints sorted", func(t *testing.T) {
		s := find(v, "db.internal")
		if s.Endpoints[0].Address != "10.1.0.1" || s.Ports[0].Protocol != "TCP" || s.Ports[0].IsHTTP() {
			t.Errorf("%+v %+v", s.Endpoints[0], s.Ports[0])
		}
	})
	t.Run("NONE has no endpoints", func(t *testing.T) {
		if s := find(v, "any.internal"); len(s.Endpoints) != 0 || s.Resolution != registry.ResolutionNone || !s.Ports[0].IsHTTP() {
			t.Errorf("%+v", s)
		}
	})
}

func TestRegistryNotifies(t *testing.T) {
	r := registry.New(nil)
	ch, cancel := r.Subscribe()
	defer cancel()
	expectSignal := func(what string) {
		t.Helper()
		select {
		case <-ch:
		default:
			t.Fatalf("%s: no change signalled", what)
		}
	}
	expectNone := func(what string) {
		t.Helper()
		select {
		case <-ch:
			t.Fatalf("%s: unexpected change signal", what)
		default:
		}
	}
	r.SetConfig(parse(t))
	expectSignal("SetConfig")
	w := registry.Workload{Name: "reviews-v3", Namespace: "default", Address: "10.0.0.4", Labels: map[string]string{"app": "reviews"}}
	if err := r.Register(w); err != nil {
		t.Fatal(err)
	}
	expectSignal("Register")
	if s := find(r.View(), "reviews.default.svc.cluster.local"); len(s.Endpoints) != 2 || s.Endpoints[1].Healthy {
		t.Fatalf("after register: %+v", s.Endpoints)
	}
	if err := r.SetHealth("default/reviews-v3", true); err != nil {
		t.Fatal(err)
	}
	expectSignal("SetHealth")
	if s := find(r.View(), "reviews.default.svc.cluster.local"); !s.Endpoints[1].Healthy {
		t.Fatal("health not applied")
	}
	if err := r.SetHealth("default/reviews-v3", true); err != nil {
		t.Fatal(err)
	}
	expectNone("SetHealth to the same value")
	if err := r.Deregister("default/reviews-v3"); err != nil {
		t.Fatal(err)
	}
	expectSignal("Deregister")
	if s := find(r.View(), "reviews.default.svc.cluster.local"); len(s.Endpoints) != 1 {
		t.Fatalf("after deregister: %+v", s.Endpoints)
	}
	if err := r.Deregister("default/reviews-v3"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("second deregister: %v", err)
	}
	if err := r.Register(registry.Workload{Name: "x", Namespace: "default"}); err == nil {
		t.Error("register without address succeeded")
	}
}

// TestViewIncremental checks that views after changes equal a fresh Build,
// and that services no change touched keep their *Service values.
func TestViewIncremental(t *testing.T) {
	r := registry.New(nil)
	objs := parse(t)
	r.SetConfig(objs)
	ws := []registry.Workload{
		{Name: "reviews-v2", Namespace: "default", Address: "10.0.0.2", Labels: map[string]string{"app": "reviews", "version": "v2"}, Healthy: true},
		{Name: "reviews-x", Namespace: "other", Address: "10.0.0.3", Labels: map[string]string{"app": "reviews"}, Healthy: true},
		{Name: "unrelated", Namespace: "default", Address: "10.0.0.5", Labels: map[string]string{"app": "ratings"}, Healthy: true},
	}
	for _, w := range ws {
		if err := r.Register(w); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string) *registry.View {
		t.Helper()
		got := r.View()
		want := registry.Build(objs, r.Workloads())
		gb, _ := json.Marshal(got.Services())
		wb, _ := json.Marshal(want.Services())
		if string(gb) != string(wb) {
			t.Fatalf("%s: incremental view differs from Build:\n got %s\nwant %s", what, gb, wb)
		}
		return got
	}
	v1 := check("initial")
	db := find(v1, "db.internal")
	reviews := find(v1, "reviews.default.svc.cluster.local")

	if err := r.SetHealth("default/unrelated", false); err != nil {
		t.Fatal(err)
	}
	v2 := check("unrelated workload")
	if find(v2, "db.internal") != db || find(v2, "reviews.default.svc.cluster.local") != reviews {
		t.Error("services not selecting the changed workload were rebuilt")
	}
	if err := r.SetHealth("default/reviews-v2", false); err != nil {
		t.Fatal(err)
	}
	v3 := check("selected workload")
	if find(v3, "reviews.default.svc.cluster.local") == reviews || find(v3, "db.internal") != db {
		t.Error("want only reviews rebuilt")
	}
	if err := r.Deregister("default/reviews-v2"); err != nil {
		t.Fatal(err)
	}
	check("deregister")
	objs = objs[:len(objs)-1] // drop a ServiceEntry
	r.SetConfig(objs)
	check("config change")
}

func TestSetKubernetes(t *testing.T) {
	r := registry.New(nil)
	r.SetConfig(parse(t))
	kubeSvc := &registry.Service{Hostname: "ratings.bookinfo.svc.cluster.local", Namespace: "bookinfo", Name: "ratings",
		Ports: []registry.Port{{Name: "http", Number: 9080, Protocol: "HTTP"}}}
	pods := []registry.Workload{
		{ID: "pod/default/reviews-1", Name: "reviews-1", Namespace: "default", Address: "10.4.0.1", Labels: map[string]string{"app": "reviews"}, Healthy: true, Pod: true},
		{ID: "pod/default/reviews-2", Name: "reviews-2", Namespace: "default", Address: "10.4.0.2",
			Labels: map[string]string{"app": "reviews", registry.LabelTLSMode: registry.TLSModeIstio}, Healthy: true, Pod: true},
	}
	r.SetKubernetes([]*registry.Service{kubeSvc}, pods)
	v := r.View()
	if got := find(v, "ratings.bookinfo.svc.cluster.local"); got != kubeSvc {
		t.Fatalf("kubernetes service not in the view as given: %+v", got)
	}
	sidecars := map[string]bool{}
	for _, e := range find(v, "reviews.default.svc.cluster.local").Endpoints {
		sidecars[e.Address] = e.Sidecar
	}
	if want := map[string]bool{"10.0.0.1": false, "10.4.0.1": false, "10.4.0.2": true}; !maps.Equal(sidecars, want) {
		t.Fatalf("endpoints (address: sidecar) %v, want %v", sidecars, want)
	}
	r.SetKubernetes(nil, pods[:1])
	v = r.View()
	if find(v, "ratings.bookinfo.svc.cluster.local") != nil || len(find(v, "reviews.default.svc.cluster.local").Endpoints) != 2 {
		t.Fatalf("after removing the service and a pod: %+v", v.Services())
	}
}

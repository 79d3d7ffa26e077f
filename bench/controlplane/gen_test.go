package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/config/validation"
	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
	"github.com/bowline-mesh/bowline/internal/xds"
)

var benchProxy = &model.Proxy{ID: "sidecar~10.0.0.1~a.default~default.svc.cluster.local", Type: model.SidecarProxy,
	Namespace: "default", WorkloadName: "a", IPs: []string{"10.0.0.1"}}

// benchMesh loads the synthetic mesh the way discovery does.
func benchMesh(b *testing.B) (string, *config.DirSource, *config.Store, *registry.Registry) {
	b.Helper()
	dir := b.TempDir()
	spec := meshSpec{services: 1000, endpoints: 10, routed: 100, files: 10}
	if err := writeMesh(dir, spec); err != nil {
		b.Fatal(err)
	}
	store := config.NewStore()
	src := config.NewDirSource(config.DirSourceConfig{Dir: dir, Validate: validation.Objects}, store)
	start := time.Now()
	snap, err := src.Reload()
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("load %d objects: %s", len(snap.Objects), time.Since(start))
	reg := registry.New(nil)
	reg.SetConfig(snap.Objects)
	return dir, src, store, reg
}

// BenchmarkGenerate measures one sidecar's generation for the full
// synthetic mesh with nothing cached (a proxy unlike any other, first push).
func BenchmarkGenerate(b *testing.B) {
	_, _, store, reg := benchMesh(b)
	start := time.Now()
	m := model.Build(store.Current().Objects, reg.View(), model.Options{})
	b.Logf("model: %s", time.Since(start))
	b.ResetTimer()
	for range b.N {
		xds.Generate(m, benchProxy)
	}
}

// BenchmarkEditPush measures what discovery does per VirtualService edit
// before sending: reload the directory (one file changed), rebuild the
// registry view and the model, and generate for one proxy key, with the
// caches discovery keeps (config objects, services, model.Memo, xds.Cache).
func BenchmarkEditPush(b *testing.B) {
	dir, src, store, reg := benchMesh(b)
	memo, cache := model.NewMemo(), xds.NewCache()
	xds.GenerateCached(model.Build(store.Current().Objects, reg.View(), model.Options{Memo: memo}), benchProxy, cache)
	spec := meshSpec{services: 1000, endpoints: 10, routed: 100, files: 10}
	b.ResetTimer()
	for k := range b.N {
		b.StopTimer()
		if err := writeRouting(dir, routedService(spec, k), 90-(k%9)*10-10); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		snap, err := src.Reload()
		if err != nil {
			b.Fatal(err)
		}
		reg.SetConfig(snap.Objects)
		cache.Rotate()
		m := model.Build(snap.Objects, reg.View(), model.Options{Memo: memo})
		xds.GenerateCached(m, benchProxy, cache)
	}
}

// BenchmarkGenerateCached measures generation for one more proxy of a
// snapshot others already generated for (distinct proxy keys, warm cache).
func BenchmarkGenerateCached(b *testing.B) {
	_, _, store, reg := benchMesh(b)
	m := model.Build(store.Current().Objects, reg.View(), model.Options{})
	cache := xds.NewCache()
	xds.GenerateCached(m, benchProxy, cache)
	b.ResetTimer()
	for range b.N {
		xds.GenerateCached(m, benchProxy, cache)
	}
}

// distinctProxies are n sidecars that differ as bench clients do (their
// node metadata parsed the way discovery parses it).
func distinctProxies(b *testing.B, n int) []*model.Proxy {
	b.Helper()
	out := make([]*model.Proxy, n)
	for i := range out {
		id := sidecarIdentity(i, false)
		md := id.nodeMetadata().GetFields()
		labels := map[string]string{}
		for k, v := range md["LABELS"].GetStructValue().GetFields() {
			labels[k] = v.GetStringValue()
		}
		ip := md["INSTANCE_IPS"].GetStringValue()
		out[i] = &model.Proxy{ID: id.id, Type: model.SidecarProxy, Namespace: md["NAMESPACE"].GetStringValue(),
			WorkloadName: md["WORKLOAD_NAME"].GetStringValue(), ServiceAccount: md["SERVICE_ACCOUNT"].GetStringValue(),
			Labels: labels, IPs: []string{ip}, Inbound: []model.PortMapping{{Port: 8080, TargetPort: 8080}},
			InterceptionMode: model.InterceptionRedirect}
	}
	return out
}

// BenchmarkGenerateDistinct measures, per sidecar, a push to 100 distinct
// sidecars (as the default benchmark fleet: five namespaces, Sidecars,
// capture) after a VirtualService edit, with discovery's caches warm from
// the previous version: what one more distinct sidecar costs a push.
func BenchmarkGenerateDistinct(b *testing.B) {
	dir, src, _, reg := benchMesh(b)
	spec := meshSpec{services: 1000, endpoints: 10, routed: 100, files: 10}
	if err := os.WriteFile(filepath.Join(dir, "sidecars.yaml"), []byte(sidecarsYAML(spec)), 0o644); err != nil {
		b.Fatal(err)
	}
	snap, err := src.Reload()
	if err != nil {
		b.Fatal(err)
	}
	reg.SetConfig(snap.Objects)
	proxies := distinctProxies(b, 100)
	memo, cache := model.NewMemo(), xds.NewCache()
	m := model.Build(snap.Objects, reg.View(), model.Options{Memo: memo})
	for _, p := range proxies {
		xds.GenerateCached(m, p, cache)
	}
	b.ResetTimer()
	for k := range b.N {
		b.StopTimer()
		if err := writeRouting(dir, routedService(spec, k), 90-(k%9)*10-10); err != nil {
			b.Fatal(err)
		}
		snap, err := src.Reload()
		if err != nil {
			b.Fatal(err)
		}
		reg.SetConfig(snap.Objects)
		cache.Rotate()
		m := model.Build(snap.Objects, reg.View(), model.Options{Memo: memo})
		b.StartTimer()
		for _, p := range proxies {
			xds.GenerateCached(m, p, cache)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(proxies)), "µs/sidecar")
}

// BenchmarkChurnPush measures generation for 500 distinct sidecars after a
// quarter second of the churn run's endpoint changes (250 workloads flip
// health: what one push at -debounce-max 250ms carries), with discovery's
// caches warm: the registry view, the model and every sidecar's resources.
func BenchmarkChurnPush(b *testing.B) {
	dir := b.TempDir()
	spec := meshSpec{services: 1000, endpoints: 10, routed: 100, files: 10}
	if err := writeChurnMesh(dir, spec); err != nil {
		b.Fatal(err)
	}
	store := config.NewStore()
	src := config.NewDirSource(config.DirSourceConfig{Dir: dir, Validate: validation.Objects}, store)
	snap, err := src.Reload()
	if err != nil {
		b.Fatal(err)
	}
	reg := registry.New(nil)
	reg.SetConfig(snap.Objects)
	wls := churnWorkloads(spec)
	for _, w := range wls {
		if err := reg.Register(registry.Workload{ID: w.Namespace + "/" + w.Name, Name: w.Name, Namespace: w.Namespace,
			Address: w.Address, Labels: w.Labels, Healthy: true}); err != nil {
			b.Fatal(err)
		}
	}
	proxies := distinctProxies(b, 500)
	memo, cache := model.NewMemo(), xds.NewCache()
	m := model.Build(snap.Objects, reg.View(), model.Options{Memo: memo})
	for _, p := range proxies {
		xds.GenerateCached(m, p, cache)
	}
	down := make([]bool, len(wls)) // all registered healthy
	rnd := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		for range 250 {
			i := rnd.IntN(len(wls))
			down[i] = !down[i]
			if err := reg.SetHealth(wls[i].Namespace+"/"+wls[i].Name, !down[i]); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		cache.Rotate()
		m := model.Build(snap.Objects, reg.View(), model.Options{Memo: memo})
		for _, p := range proxies {
			xds.GenerateCached(m, p, cache)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(proxies)), "µs/sidecar")
}

// BenchmarkPolicyEdit measures a push to 100 distinct sidecars after an
// AuthorizationPolicy edit that selects one workload (its namespace and
// app label), with discovery's caches warm: the selected sidecar's
// inbound part is what changes.
func BenchmarkPolicyEdit(b *testing.B) {
	dir, src, _, reg := benchMesh(b)
	spec := meshSpec{services: 1000, endpoints: 10, routed: 100, files: 10}
	if err := os.WriteFile(filepath.Join(dir, "sidecars.yaml"), []byte(sidecarsYAML(spec)), 0o644); err != nil {
		b.Fatal(err)
	}
	proxies := distinctProxies(b, 100)
	policy := func(k int) string {
		p := proxies[k%len(proxies)]
		return fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: %s}
spec:
  selector: {matchLabels: {app: %s}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin/%d"]}}]}]
`, p.Namespace, p.Labels["app"], k)
	}
	path := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(path, []byte(policy(0)), 0o644); err != nil {
		b.Fatal(err)
	}
	snap, err := src.Reload()
	if err != nil {
		b.Fatal(err)
	}
	reg.SetConfig(snap.Objects)
	memo, cache := model.NewMemo(), xds.NewCache()
	m := model.Build(snap.Objects, reg.View(), model.Options{Memo: memo})
	for _, p := range proxies {
		xds.GenerateCached(m, p, cache)
	}
	b.ResetTimer()
	for k := range b.N {
		b.StopTimer()
		if err := os.WriteFile(path, []byte(policy(k+1)), 0o644); err != nil {
			b.Fatal(err)
		}
		snap, err := src.Reload()
		if err != nil {
			b.Fatal(err)
		}
		reg.SetConfig(snap.Objects)
		cache.Rotate()
		m := model.Build(snap.Objects, reg.View(), model.Options{Memo: memo})
		b.StartTimer()
		for _, p := range proxies {
			xds.GenerateCached(m, p, cache)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(proxies)), "µs/sidecar")
}

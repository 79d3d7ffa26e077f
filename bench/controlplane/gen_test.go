package main

import (
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/config/validation"
	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
	"github.com/bowline-mesh/bowline/internal/xds"
)

// BenchmarkGenerate measures one sidecar's generation for the full synthetic mesh.
func BenchmarkGenerate(b *testing.B) {
	dir := b.TempDir()
	if err := writeMesh(dir, meshSpec{services: 1000, endpoints: 10, routed: 100, files: 10}); err != nil {
		b.Fatal(err)
	}
	store := config.NewStore()
	start := time.Now()
	snap, err := config.NewDirSource(config.DirSourceConfig{Dir: dir, Validate: validation.Objects}, store).Reload()
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("load %d objects: %s", len(snap.Objects), time.Since(start))
	reg := registry.New(nil)
	reg.SetConfig(snap.Objects)
	start = time.Now()
	m := model.Build(snap.Objects, reg.View(), model.Options{})
	b.Logf("model: %s", time.Since(start))
	p := &model.Proxy{ID: "sidecar~10.0.0.1~a.default~default.svc.cluster.local", Type: model.SidecarProxy, Namespace: "default", WorkloadName: "a", IPs: []string{"10.0.0.1"}}
	b.ResetTimer()
	for range b.N {
		xds.Generate(m, p)
	}
}

package server

import (
	"log/slog"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
	"github.com/bowline-mesh/bowline/internal/xds"
)

// MeshGenerator is the Generator of Bowline's model and xDS generators:
// model.Build resolves the configuration and xds.Generate makes each
// proxy's resources.
type MeshGenerator struct {
	opts model.Options
}

var _ Generator = (*MeshGenerator)(nil)

// NewMeshGenerator returns the production generator for a cluster domain and
// root namespace ("" takes model's defaults). log receives DEBUG notes of
// configuration the model skipped.
func NewMeshGenerator(domain, rootNamespace string, log *slog.Logger) *MeshGenerator {
	return &MeshGenerator{opts: model.Options{Domain: domain, RootNamespace: rootNamespace, Log: log}}
}

// Build resolves cfg and the services into a mesh.
func (g *MeshGenerator) Build(cfg *config.Snapshot, services *registry.View) Mesh {
	return modelMesh{model.Build(cfg.Objects, services, g.opts)}
}

// modelMesh adapts *model.Snapshot to Mesh.
type modelMesh struct{ snap *model.Snapshot }

func (m modelMesh) Version() string    { return m.snap.Version() }
func (m modelMesh) Problems() []string { return m.snap.Problems() }

func (m modelMesh) Generate(p *model.Proxy) Resources {
	r := xds.Generate(m.snap, p)
	return Resources{ByType: r.ByType(), Versions: r.Versions}
}

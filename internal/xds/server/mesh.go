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
	// cache carries generator work across proxies and mesh versions.
	cache *xds.Cache
}

var _ Generator = (*MeshGenerator)(nil)

// NewMeshGenerator returns the production generator for a cluster domain and
// root namespace ("" takes model's defaults). log receives DEBUG notes of
// configuration the model skipped.
func NewMeshGenerator(domain, rootNamespace string, log *slog.Logger) *MeshGenerator {
	return &MeshGenerator{opts: model.Options{Domain: domain, RootNamespace: rootNamespace, Log: log, Memo: model.NewMemo()}, cache: xds.NewCache()}
}

// WithoutCA makes g generate for a mesh without a CA (model.Options.NoCA):
// no auto mTLS, plaintext inbound whatever PeerAuthentication says, and
// ISTIO_MUTUAL/STRICT configuration listed in the mesh's problems. Call it
// before the server runs; it returns g.
func (g *MeshGenerator) WithoutCA() *MeshGenerator {
	g.opts.NoCA = true
	return g
}

// WithGatewayDeployments makes g generate for a cluster where every Gateway
// API Gateway has its own gateway deployment (model.Options.GatewayDeployments).
// Call it before the server runs; it returns g.
func (g *MeshGenerator) WithGatewayDeployments() *MeshGenerator {
	g.opts.GatewayDeployments = true
	return g
}

// ChangeStats counts how the generations so far produced their parts
// (change-driven generation, ADR 0005).
func (g *MeshGenerator) ChangeStats() xds.ChangeStats { return g.cache.ChangeStats() }

// Build resolves cfg and the services into a mesh.
func (g *MeshGenerator) Build(cfg *config.Snapshot, services *registry.View) Mesh {
	g.cache.Rotate() // what the previous version used stays one more version
	return modelMesh{snap: model.Build(cfg.Objects, services, g.opts), cache: g.cache}
}

// modelMesh adapts *model.Snapshot to Mesh.
type modelMesh struct {
	snap  *model.Snapshot
	cache *xds.Cache
}

func (m modelMesh) Version() string { return m.snap.Version() }

// Model is the snapshot the mesh was generated from (for /debug/describez).
func (m modelMesh) Model() *model.Snapshot { return m.snap }
func (m modelMesh) Problems() []string     { return m.snap.Problems() }

func (m modelMesh) Generate(p *model.Proxy) Resources {
	r := xds.GenerateCached(m.snap, p, m.cache)
	return Resources{ByType: r.ByType(), Versions: r.Versions, Wire: r.Wire}
}

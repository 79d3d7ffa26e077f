package cli

import (
	"log/slog"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
	"github.com/bowline-mesh/bowline/internal/xds"
	"github.com/bowline-mesh/bowline/internal/xds/server"
)

// meshGenerator wires the model and the xDS generators into the ADS server.
type meshGenerator struct {
	opts model.Options
}

var _ server.Generator = (*meshGenerator)(nil)

func newGenerator(domain, rootNamespace string, log *slog.Logger) *meshGenerator {
	return &meshGenerator{opts: model.Options{Domain: domain, RootNamespace: rootNamespace, Log: log}}
}

// Build resolves one configuration version and the services into a mesh snapshot.
func (g *meshGenerator) Build(cfg *config.Snapshot, services *registry.View) server.Mesh {
	return meshSnapshot{model.Build(cfg.Objects, services, g.opts)}
}

// meshSnapshot adapts *model.Snapshot to server.Mesh.
type meshSnapshot struct{ *model.Snapshot }

// Generate returns the xDS resources of p.
func (m meshSnapshot) Generate(p *model.Proxy) server.Resources {
	r := xds.Generate(m.Snapshot, p)
	return server.Resources{ByType: r.ByType(), Versions: r.Versions}
}

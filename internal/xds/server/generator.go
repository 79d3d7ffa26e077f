package server

import (
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// Resources are the xDS resources generated for one proxy.
type Resources struct {
	// ByType holds the resources by type URL.
	ByType map[string][]types.Resource
	// Versions holds a content hash per type URL; the server computes the
	// missing ones. Equal content must give equal versions.
	Versions map[string]string
	// Wire holds, per type URL, the deterministic wire form of ByType's
	// resources in the same order; the server encodes missing types. The
	// server sends these bytes as they are, shared by every stream.
	Wire map[string][]*anypb.Any
}

// Generator turns configuration and services into a mesh model. Build is
// called from one goroutine at a time.
type Generator interface {
	// Build resolves one version of the configuration and the services.
	Build(cfg *config.Snapshot, services *registry.View) Mesh
}

// Mesh is one immutable version of the mesh model. Generate is called
// concurrently and must be a pure function of the mesh and the proxy's
// fields other than ID: the server shares one result among proxies that
// differ only in ID.
type Mesh interface {
	// Version changes whenever the mesh's inputs change.
	Version() string
	// Problems lists configuration the model could not use, one message each.
	Problems() []string
	// Generate returns the resources for p.
	Generate(p *model.Proxy) Resources
}

// Registry is what the server needs from the service registry.
// *registry.Registry implements it.
type Registry interface {
	// SetConfig replaces the config objects services are read from.
	SetConfig(objs []*config.Object)
	// View returns the current services; the same pointer until a change.
	View() *registry.View
	// Subscribe returns a channel signalled after every change and a cancel function.
	Subscribe() (<-chan struct{}, func())
	// Register adds or replaces a workload.
	Register(w registry.Workload) error
	// Deregister removes a workload by id; it wraps registry.ErrNotFound for an unknown id.
	Deregister(id string) error
	// SetHealth marks a workload healthy or not; it wraps registry.ErrNotFound for an unknown id.
	SetHealth(id string, healthy bool) error
	// Workloads returns the registered workloads.
	Workloads() []registry.Workload
}

var _ Registry = (*registry.Registry)(nil)

package cli

import (
	"context"

	"golang.org/x/sync/errgroup"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/kube"
	"github.com/bowline-mesh/bowline/internal/registry"
	"github.com/bowline-mesh/bowline/internal/xds/server"
)

// discoveryKube is discovery's Kubernetes wiring: when it runs in a pod or
// is given --kubeconfig, a kube.Controller feeds the server's config store
// and registry from the cluster.
type discoveryKube struct {
	kubeconfig string
	clients    *kube.Clients
	ctl        *kube.Controller
}

// enabled reports whether discovery reads a cluster.
func (d *discoveryKube) enabled() bool { return d.kubeconfig != "" || kube.InCluster() }

// setup starts nothing: it builds the clients and the controller and gives
// the server the store and registry the controller feeds.
func (d *discoveryKube) setup(cfg *server.Config) error {
	if !d.enabled() {
		return nil
	}
	rc, err := kube.RESTConfig(d.kubeconfig)
	if err != nil {
		return err
	}
	if d.clients, err = kube.NewClients(rc); err != nil {
		return err
	}
	if cfg.Store == nil {
		cfg.Store = config.NewStore()
	}
	reg := registry.New(cfg.Logger)
	cfg.Registry = reg
	domain, root := cfg.Domain, cfg.RootNamespace
	d.ctl, err = kube.NewController(kube.ControllerConfig{Kube: d.clients.Kube, Istio: d.clients.Istio, Store: cfg.Store, Registry: reg,
		Validate: cfg.Validate, Domain: domain, RootNamespace: root, Logger: cfg.Logger})
	return err
}

// runBeside returns run extended with the cluster's components.
func (d *discoveryKube) runBeside(run func(context.Context) error) func(context.Context) error {
	if d.ctl == nil {
		return run
	}
	return func(ctx context.Context) error {
		g, ctx := errgroup.WithContext(ctx)
		g.Go(func() error { return d.ctl.Run(ctx) })
		g.Go(func() error { return run(ctx) })
		return g.Wait()
	}
}

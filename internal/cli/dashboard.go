package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"time"

	"github.com/spf13/cobra"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/config/analysis"
	"github.com/bowline-mesh/bowline/internal/dashboard"
	"github.com/bowline-mesh/bowline/internal/registry"
	"github.com/bowline-mesh/bowline/internal/xds/server"
)

// meshDashboard builds the dashboard of the control plane cfg configures and
// mounts it on cfg's debug server (giving cfg a store and registry of its
// own when it has none, so the dashboard reads the same ones). Call bind with
// the server once it is built, before it runs.
func meshDashboard(cfg *server.Config, interval time.Duration, noCA bool) (d *dashboard.Dashboard, bind func(*server.Server), err error) {
	if cfg.Store == nil {
		cfg.Store = config.NewStore()
	}
	if cfg.Registry == nil {
		cfg.Registry = registry.New(cfg.Logger)
	}
	var srv *server.Server
	reg := cfg.Registry
	d, err = dashboard.New(dashboard.Config{
		Store:    cfg.Store,
		Interval: interval,
		Logger:   cfg.Logger,
		Services: func() []*registry.Service { return reg.View().Services() },
		Proxies: func() []dashboard.Proxy {
			if srv == nil {
				return nil
			}
			return dashboardProxies(srv.SyncStatus())
		},
		MeshProblems: func() []string {
			if srv == nil {
				return nil
			}
			return srv.ConfigStatus().MeshProblems
		},
		Analysis: analysis.Options{Domain: cfg.Domain, RootNamespace: cfg.RootNamespace, NoCA: noCA},
	})
	if err != nil {
		return nil, nil, err
	}
	if cfg.Handlers == nil {
		cfg.Handlers = map[string]http.Handler{}
	}
	for p, h := range d.Handlers() {
		cfg.Handlers[p] = h
	}
	return d, func(s *server.Server) { srv = s }, nil
}

// dashboardProxies turns the server's sync status into the dashboard's proxies.
func dashboardProxies(sz server.Syncz) []dashboard.Proxy {
	out := make([]dashboard.Proxy, 0, len(sz.Proxies))
	for _, p := range sz.Proxies {
		dp := dashboard.Proxy{ID: p.ID, Name: proxyName(p.ID), Type: string(p.Type), Namespace: p.Namespace, Workload: p.Workload,
			Labels: p.Labels, StatsAddress: p.StatsAddress, ConnectedSince: p.ConnectedSince, Sync: map[string]dashboard.SyncState{}}
		for _, t := range statusTypes {
			ts, ok := p.Types[t]
			dp.Sync[t] = dashboard.SyncState{State: syncState(ts, ok), NACK: ts.NACK}
		}
		out = append(out, dp)
	}
	return out
}

// runBeside runs main, with beside running until main returns, and returns
// main's error (or beside's).
func runBeside(ctx context.Context, main, beside func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- beside(ctx) }()
	err := main(ctx)
	cancel()
	if berr := <-done; err == nil {
		err = berr
	}
	return err
}

func newDashboardCommand(s streams) *cobra.Command {
	var (
		debugAddr string
		open      bool
		loc       upLocator
	)
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Print (or open) the address of the mesh's built-in dashboard",
		Long: `The control plane ('bowline discovery', and the one 'bowline up' runs) serves a
dashboard on its debug address: the service graph with request rates, error shares,
p50/p99 latency and mTLS per edge, golden-signal charts per service and workload,
failed requests by Envoy response flag, the configuration in force with validation
and analysis problems, and every proxy's xDS sync state. It is fed by scraping the
proxies' Istio metrics; no Prometheus, Grafana or Kiali is needed.

dashboard prints its URL: the bowline up running in this directory (./.bowline), else
the only bowline up on this machine, else a bowline discovery on its default debug
address. On Kubernetes (the installed discovery's debug address is the pod's
loopback port 8080), forward the port first:
  kubectl -n istio-system port-forward deploy/istiod 15014:8080`,
		Example: `  # The dashboard of the bowline up running on this machine
  bowline dashboard

  # ... and open it in the desktop's browser (xdg-open)
  bowline dashboard --open

  # Of a control plane elsewhere
  bowline dashboard --debug-address 127.0.0.1:25014`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("debug-address") {
				st, err := loc.find()
				switch {
				case err == nil:
					debugAddr = st.ControlPlane.Debug
				case errors.Is(err, errNoUp):
				default:
					return err
				}
			}
			url := "http://" + debugAddr + "/"
			fmt.Fprintf(s.out, "dashboard: %s\n", url)
			if open {
				if err := exec.Command("xdg-open", url).Start(); err != nil {
					return fmt.Errorf("open %s: %w", url, err)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&debugAddr, "debug-address", server.DefaultDebugAddress, "HOST:PORT of the control plane's debug server (default: the running bowline up's, else bowline discovery's)")
	cmd.Flags().BoolVar(&open, "open", false, "also open the URL with xdg-open")
	loc.flags(cmd)
	return cmd
}

package cli

import (
	"errors"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/bowline-mesh/bowline/internal/config/validation"
	"github.com/bowline-mesh/bowline/internal/xds/server"
)

func newDiscoveryCommand(s streams) *cobra.Command {
	cfg := server.Config{}
	var verbose bool
	cmd := &cobra.Command{
		Use:   "discovery",
		Short: "Run the control plane: serve xDS to proxies from a directory of Istio YAML",
		Long: `discovery is Bowline's control plane (Istio's istiod): it watches a directory of
Istio configuration, builds the mesh from it and from registered workloads, and
serves Envoy xDS v3 (ADS, state of the world and delta) to Bowline proxies, Envoy
and proxyless gRPC clients. Changes are debounced and pushed only to the proxies
whose configuration changed; a file with errors keeps its last good version.

The debug address serves:
  /debug/syncz       what each proxy was sent and acknowledged (bowline proxy-status reads it)
  /debug/configz     the configuration in force and its problems
  /debug/registryz   services, endpoints and registered workloads
  /metrics           Prometheus metrics (pilot_xds_pushes, pilot_xds, ...)
  /ready             200 once the first configuration is loaded
and the workload registration API used by 'bowline up' and VMs:
  POST   /v1/workloads                              {"name","namespace","address","ports","labels","serviceAccount","healthy"}
  DELETE /v1/workloads/{namespace}/{name}
  PUT    /v1/workloads/{namespace}/{name}/health    {"healthy": true}`,
		Example: `  # Serve the config in ./mesh on the default addresses (xDS 127.0.0.1:15010, debug 127.0.0.1:15014)
  bowline discovery --config-dir ./mesh --insecure-xds

  # Listen on all interfaces, push at most every 500ms
  bowline discovery --config-dir ./mesh --insecure-xds --xds-address 0.0.0.0:15010 --debounce 500ms

  # Register a VM workload, then watch proxies converge
  curl -X POST 127.0.0.1:15014/v1/workloads -d '{"name":"vm-1","namespace":"default","address":"10.0.0.7","ports":{"http":8080},"labels":{"app":"ratings"}}'
  bowline proxy-status`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.ConfigDir == "" {
				return &exitError{code: 2, err: errors.New("--config-dir is required")}
			}
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			cfg.Logger = slog.New(slog.NewTextHandler(s.err, &slog.HandlerOptions{Level: level}))
			cfg.Validate = validation.Objects
			cfg.Version = version
			cfg.Generator = server.NewMeshGenerator(cfg.Domain, cfg.RootNamespace, cfg.Logger)
			srv, err := server.New(cfg)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return srv.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.ConfigDir, "config-dir", "", "directory of Istio YAML to watch (required)")
	f.StringVar(&cfg.XDSAddress, "xds-address", server.DefaultXDSAddress, "HOST:PORT to serve xDS (ADS) on")
	f.BoolVar(&cfg.Insecure, "insecure-xds", false, "serve xDS in plaintext (required until the CA is available)")
	f.StringVar(&cfg.Domain, "domain", server.DefaultDomain, "cluster domain of service host names")
	f.StringVar(&cfg.RootNamespace, "root-namespace", server.DefaultRootNamespace, "namespace holding mesh-wide defaults")
	f.DurationVar(&cfg.Debounce, "debounce", server.DefaultDebounce, "quiet period after a change before pushing")
	f.DurationVar(&cfg.DebounceMax, "debounce-max", server.DefaultDebounceMax, "longest a burst of changes may delay a push")
	f.StringVar(&cfg.DebugAddress, "debug-address", server.DefaultDebugAddress, "HOST:PORT for /debug, /metrics, /ready and the registration API")
	f.StringVar(&cfg.ID, "id", "", "name of this control plane in proxy-status (default discovery-HOSTNAME)")
	f.BoolVarP(&verbose, "verbose", "v", false, "log at DEBUG level")
	return cmd
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/bowline-mesh/bowline/internal/ca"
	"github.com/bowline-mesh/bowline/internal/config/validation"
	"github.com/bowline-mesh/bowline/internal/dashboard"
	"github.com/bowline-mesh/bowline/internal/kube"
	"github.com/bowline-mesh/bowline/internal/kube/inject"
	"github.com/bowline-mesh/bowline/internal/xds/server"
)

func newDiscoveryCommand(s streams) *cobra.Command {
	cfg := server.Config{}
	sec := &discoverySecurity{}
	kc := &discoveryKube{injector: inject.Defaults(defaultImage())}
	var verbose bool
	var scrape time.Duration
	cmd := &cobra.Command{
		Use:   "discovery",
		Short: "Run the control plane: serve xDS to proxies from Istio YAML in a directory or a Kubernetes cluster",
		Long: `discovery is Bowline's control plane (Istio's istiod): it watches a directory of
Istio configuration, builds the mesh from it and from registered workloads, and
serves Envoy xDS v3 (ADS, state of the world and delta) to Bowline proxies, Envoy
and proxyless gRPC clients. Changes are pushed only to the proxies whose
configuration changed: an isolated change (none pushed within --debounce-max) at
once, the changes that follow it merged and pushed after --debounce without a
change (at most --debounce-max later; --debounce-trailing waits before every push,
as istiod does). A file with
errors keeps its last good version.
Mesh-wide settings (Istio's MeshConfig) come from the ConfigMap istio in the root
namespace (data.mesh) in the directory, or from --mesh-config.

On Kubernetes (in a pod, or with --kubeconfig) it also reads the cluster like
istiod: Services and EndpointSlices become NAME.NS.svc.cluster.local with their
pods' labels, service accounts, localities and readiness; pods are selected by
ServiceEntry workloadSelectors; Istio's CRDs are read through informers and
validated like files; the istio ConfigMap's discoverySelectors limit the
namespaces read. The elected leader writes Istio's status on those objects:
observedGeneration and the Reconciled condition, True once every connected
proxy has the object's current generation ("2/2 proxies up to date."), and
with --enable-analysis the analyzers' messages (status.validationMessages).

The debug address serves:
  /                  the dashboard: service graph, golden signals, failures, config, sync (bowline dashboard)
  /debug/syncz       what each proxy was sent and acknowledged (bowline proxy-status reads it)
  /debug/configz     the configuration in force and its problems
  /debug/registryz   services, endpoints and registered workloads
  /debug/describez   ?kind=pod|workload|service&name=&namespace=: what applies to it (bowline x describe)
  /metrics           Prometheus metrics (pilot_xds_pushes, pilot_xds, ...)
  /ready             200 once the first configuration is loaded (on Kubernetes: and the cluster read)
and the workload registration API used by 'bowline up' and VMs:
  POST   /v1/workloads                              {"name","namespace","address","ports","labels","serviceAccount","healthy"}
  DELETE /v1/workloads/{namespace}/{name}
  PUT    /v1/workloads/{namespace}/{name}/health    {"healthy": true}
Keep it on loopback: the registration API is not authenticated.

--monitoring-address serves only /metrics, /version and /ready (istiod's port 15014;
the installed Deployment listens there on the pod's address and the kubelet probes
/ready on it), and --plaintext-xds-address serves xDS without TLS beside the TLS port
(istiod's 15010; no client certificate, no CA there, and secrets are never sent).`,
		Example: `  # Serve the config in ./mesh with xDS over mTLS and the CA on the xDS port; the CA
  # lives in ./cacerts (created on first start) and a token for default/web is written
  # to ./web.token (mode 0600) for that workload's proxy (--ca-token-file)
  bowline discovery --config-dir ./mesh --ca-dir ./cacerts --bootstrap-token default/web=./web.token

  # Read a cluster from outside it (plus local files, when --config-dir is also given)
  bowline discovery --kubeconfig ~/.kube/config --insecure-xds

  # Plaintext xDS on a trusted network, no CA (default addresses: xDS 127.0.0.1:15010, debug 127.0.0.1:15014)
  bowline discovery --config-dir ./mesh --insecure-xds

  # Mesh-wide settings (tracing providers, access log, outbound policy) from a MeshConfig
  # file instead of the ConfigMap istio in ./mesh
  bowline discovery --config-dir ./mesh --insecure-xds --mesh-config ./mesh.yaml

  # As installed on Kubernetes: xDS and the CA over mTLS on 15012, plaintext xDS on 15010,
  # metrics and readiness on 15014 at the pod's address, debug on the pod's loopback 8080
  bowline discovery --kubeconfig ~/.kube/config --ca-dir ./cacerts --xds-address 0.0.0.0:15012 \
    --plaintext-xds-address 0.0.0.0:15010 --monitoring-address 0.0.0.0:15014 --debug-address 127.0.0.1:8080

  # Listen on all interfaces, push at most every 500ms
  bowline discovery --config-dir ./mesh --insecure-xds --xds-address 0.0.0.0:15010 --debounce 500ms

  # Register a VM workload, then watch proxies converge
  curl -X POST 127.0.0.1:15014/v1/workloads -d '{"name":"vm-1","namespace":"default","address":"10.0.0.7","ports":{"http":8080},"labels":{"app":"ratings"}}'
  bowline proxy-status`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.ConfigDir == "" && !kc.enabled() {
				return &exitError{code: 2, err: errors.New("--config-dir is required (or --kubeconfig, or run in a Kubernetes pod)")}
			}
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			cfg.Logger = slog.New(slog.NewTextHandler(s.err, &slog.HandlerOptions{Level: level}))
			cfg.Validate = validation.Objects
			defer kc.cleanup()
			if err := kc.setup(cmd.Context(), &cfg, sec); err != nil {
				return &exitError{code: 2, err: err}
			}
			cfg.Version = version
			gen := server.NewMeshGenerator(cfg.Domain, cfg.RootNamespace, cfg.Logger)
			noCA := cfg.Insecure && sec.caDir == ""
			if noCA {
				gen.WithoutCA()
			}
			if kc.enabled() {
				gen.WithGatewayDeployments()
			}
			cfg.Generator = gen
			caSrv, mca, err := sec.setup(&cfg)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if err := kc.setupCA(cmd.Context(), mca); err != nil {
				return &exitError{code: 2, err: err}
			}
			dash, bindDash, err := meshDashboard(&cfg, scrape, noCA)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			srv, err := server.New(cfg)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			bindDash(srv)
			if noCA {
				cfg.Logger.Info(noCANotice)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			runServer := kc.runBeside(func(ctx context.Context) error { return runBeside(ctx, srv.Run, dash.Run) }, srv)
			if mca == nil {
				return runServer(ctx)
			}
			if caSrv == nil {
				return mca.runBeside(ctx, runServer)
			}
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			caDone := make(chan error, 1)
			go func() { caDone <- caSrv.Run(ctx) }()
			err = mca.runBeside(ctx, runServer)
			cancel()
			if caErr := <-caDone; err == nil {
				err = caErr
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.ConfigDir, "config-dir", "", "directory of Istio YAML to watch (required unless reading a cluster)")
	f.StringVar(&kc.kubeconfig, "kubeconfig", "", "read Services, endpoints, pods and Istio objects from the cluster of this kubeconfig (in a pod: its own cluster, without this flag)")
	f.StringVar(&cfg.XDSAddress, "xds-address", server.DefaultXDSAddress, "HOST:PORT to serve xDS (ADS) on")
	f.BoolVar(&cfg.Insecure, "insecure-xds", false, "serve xDS in plaintext (no client certificates); without --ca-dir there is no CA and mesh traffic is plaintext too")
	f.StringVar(&sec.caDir, "ca-dir", "", "CA directory (Istio's cacerts layout; a root is created when empty); required unless --insecure-xds")
	f.StringVar(&sec.trustDomain, "trust-domain", ca.DefaultTrustDomain, "SPIFFE trust domain of workload identities")
	f.DurationVar(&sec.ttl, "workload-cert-ttl", ca.DefaultTTL, "lifetime of workload certificates (at most 90 days)")
	f.StringVar(&sec.caAddress, "ca-address", "", "serve the CA on its own TLS port HOST:PORT (default: on the xDS port; 127.0.0.1:15012 with --insecure-xds and --ca-dir)")
	f.StringArrayVar(&sec.tokens, "bootstrap-token", nil, "mint a CA token for NAMESPACE/SERVICE_ACCOUNT and write it to FILE (mode 0600): NS/SA=FILE (repeatable)")
	f.StringVar(&cfg.Domain, "domain", server.DefaultDomain, "cluster domain of service host names")
	f.StringVar(&cfg.RootNamespace, "root-namespace", server.DefaultRootNamespace, "namespace holding mesh-wide defaults and the mesh ConfigMap istio (MeshConfig rootNamespace overrides the former)")
	f.StringVar(&cfg.MeshConfigFile, "mesh-config", "", "MeshConfig YAML file, watched (istiod's --meshConfig); replaces the ConfigMap istio of --config-dir")
	f.DurationVar(&cfg.Debounce, "debounce", server.DefaultDebounce, "quiet period after a change before pushing")
	f.DurationVar(&cfg.DebounceMax, "debounce-max", server.DefaultDebounceMax, "longest a burst of changes may delay a push")
	f.BoolVar(&cfg.DebounceTrailing, "debounce-trailing", false, "wait the quiet period before every push, as istiod does (default: an isolated change, none pushed within --debounce-max, is pushed at once; the changes following it are debounced)")
	f.StringVar(&cfg.DebugAddress, "debug-address", server.DefaultDebugAddress, "HOST:PORT for /debug, /metrics, /ready and the registration API")
	f.StringVar(&cfg.PlaintextXDSAddress, "plaintext-xds-address", "", "also serve xDS in plaintext on HOST:PORT (istiod's 15010): no client certificate, no CA, and no secrets (SDS requests are dropped)")
	f.StringVar(&cfg.MonitoringAddress, "monitoring-address", "", "serve only /metrics, /version and /ready on HOST:PORT (istiod's monitoring port 15014), safe to expose beyond loopback")
	f.StringVar(&cfg.ID, "id", "", "name of this control plane in proxy-status (default discovery-HOSTNAME)")
	f.StringVar(&kc.webhookAddress, "webhook-address", kube.DefaultWebhookAddress, "on Kubernetes: HOST:PORT of the validation webhook (HTTPS, path /validate)")
	f.StringArrayVar(&kc.webhookConfigs, "webhook-config", []string{"istio-validator-istio-system"}, "on Kubernetes: ValidatingWebhookConfiguration whose caBundle discovery keeps set to its root (repeatable)")
	f.StringArrayVar(&kc.injectorConfigs, "injector-webhook-config", []string{"istio-sidecar-injector"}, "on Kubernetes: MutatingWebhookConfiguration of the sidecar injector (path /inject) whose caBundle discovery keeps set to its root (repeatable)")
	f.StringVar(&kc.injector.Image, "injector-image", kc.injector.Image, "on Kubernetes: bowline image the injector gives pods (sidecar and init container)")
	f.StringVar((*string)(&kc.injector.ImagePullPolicy), "injector-image-pull-policy", "", "on Kubernetes: imagePullPolicy of the injected containers (default: Kubernetes' default)")
	f.StringVar(&kc.gatewayServiceType, "gateway-service-type", string(kube.DefaultGatewayServiceType), "on Kubernetes: type of the Service discovery creates for each Gateway API Gateway of class istio (LoadBalancer, ClusterIP or NodePort)")
	f.StringVar(&kc.injector.Revision, "revision", "", "on Kubernetes: the control plane revision (istio.io/rev) whose pods the injector serves; empty is the default revision")
	f.BoolVar(&kc.writeStatus, "write-status", true, "on Kubernetes: the leader writes Istio's status on the cluster's Istio objects: observedGeneration and the Reconciled condition (\"N/M proxies up to date.\")")
	f.BoolVar(&kc.enableAnalysis, "enable-analysis", false, "on Kubernetes: also run Istio's analyzers in the control plane and write their messages to status.validationMessages (istiod's PILOT_ENABLE_ANALYSIS)")
	f.DurationVar(&scrape, "scrape-interval", dashboard.DefaultInterval, "how often the dashboard scrapes the proxies' metrics")
	f.BoolVarP(&verbose, "verbose", "v", false, "log at DEBUG level")
	return cmd
}

// noCANotice is logged once when the control plane runs without a CA.
const noCANotice = "no CA: workloads get no certificates, so auto mTLS and PeerAuthentication mTLS are off and traffic between sidecars is plaintext; ISTIO_MUTUAL DestinationRules and STRICT PeerAuthentications are listed as problems on /debug/configz"

// discoverySecurity are discovery's CA flags.
type discoverySecurity struct {
	caDir, trustDomain, caAddress string
	ttl                           time.Duration
	tokens                        []string
}

// setup starts nothing: it loads the CA, writes the bootstrap tokens and
// fills cfg's TLS and CA service; it returns the mesh CA (nil without
// --ca-dir), whose directory watcher the command runs, and the CA's own server when the CA
// gets its own port.
func (d *discoverySecurity) setup(cfg *server.Config) (*ca.Server, *meshCA, error) {
	if d.caDir == "" {
		if !cfg.Insecure {
			return nil, nil, errors.New("--ca-dir is required for xDS over mTLS (or pass --insecure-xds)")
		}
		if len(d.tokens) > 0 || d.caAddress != "" {
			return nil, nil, errors.New("--bootstrap-token and --ca-address need --ca-dir")
		}
		return nil, nil, nil
	}
	type tokenFlag struct{ ns, sa, file string }
	var toks []tokenFlag
	for _, t := range d.tokens {
		id, file, ok := strings.Cut(t, "=")
		ns, sa, ok2 := strings.Cut(id, "/")
		if !ok || !ok2 || ns == "" || sa == "" || file == "" {
			return nil, nil, fmt.Errorf("--bootstrap-token %q: want NAMESPACE/SERVICE_ACCOUNT=FILE", t)
		}
		toks = append(toks, tokenFlag{ns, sa, file})
	}
	m, err := newMeshCA(d.caDir, d.trustDomain, d.ttl, cfg.Logger)
	if err != nil {
		return nil, nil, err
	}
	for _, t := range toks {
		if err := m.writeToken(t.file, t.ns, t.sa); err != nil {
			return nil, nil, fmt.Errorf("--bootstrap-token %s/%s: %w", t.ns, t.sa, err)
		}
	}
	if !cfg.Insecure {
		cfg.TLS = m.xdsTLS(cfg.XDSAddress)
	}
	addr := d.caAddress
	if addr == "" && !cfg.Insecure {
		cfg.Register = m.register // the CA on the xDS port, like istiod's 15012
		return nil, m, nil
	}
	if addr == "" {
		addr = ca.DefaultAddress
	}
	srv, err := ca.NewServer(ca.ServerConfig{Address: addr, CA: m.ca, Authenticator: m.authn, Logger: cfg.Logger})
	return srv, m, err
}

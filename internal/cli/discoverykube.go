package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"

	"github.com/bowline-mesh/bowline/internal/ca"
	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/config/analysis"
	"github.com/bowline-mesh/bowline/internal/kube"
	"github.com/bowline-mesh/bowline/internal/kube/inject"
	"github.com/bowline-mesh/bowline/internal/registry"
	"github.com/bowline-mesh/bowline/internal/xds/server"
)

// discoveryKube is discovery's Kubernetes wiring: when it runs in a pod or
// is given --kubeconfig, a kube.Controller feeds the server's config store
// and registry from the cluster; the CA keeps its root in the cluster's
// Secrets and authenticates service account tokens by TokenReview; the
// validation webhook and the sidecar injector are served; and the elected
// leader publishes the root (istio-ca-root-cert ConfigMaps, the webhooks'
// caBundle).
type discoveryKube struct {
	kubeconfig      string
	webhookAddress  string
	webhookConfigs  []string
	injectorConfigs []string
	// injector is the sidecar injector's config (image, revision); its
	// MeshConfig is the cluster's, read for every pod.
	injector inject.Config
	// gatewayServiceType is the type of the Service discovery creates for
	// each Gateway API Gateway (Istio's default LoadBalancer).
	gatewayServiceType string
	// writeStatus writes Istio's status (observedGeneration, Reconciled) on
	// the cluster's Istio objects; enableAnalysis adds the analysis
	// messages (status.validationMessages).
	writeStatus, enableAnalysis bool

	clients  *kube.Clients
	ctl      *kube.Controller
	secrets  *kube.CASecrets
	caSource string // the Secret the CA came from; "" when it created its root
	root     string
	validate config.Validator
	cfg      *server.Config
	tmpDir   string // the CA directory this process made, removed on exit
	mca      *meshCA
	reg      *registry.Registry
	trust    string
}

// enabled reports whether discovery reads a cluster.
func (d *discoveryKube) enabled() bool { return d.kubeconfig != "" || kube.InCluster() }

// setup starts nothing: it builds the clients and the controller, gives
// the server the store and registry the controller feeds, and fills the
// CA directory from the cluster's Secrets.
func (d *discoveryKube) setup(ctx context.Context, cfg *server.Config, sec *discoverySecurity) error {
	if !d.enabled() {
		return nil
	}
	d.cfg = cfg
	d.injector.ClusterDomain = cfg.Domain
	if err := d.injector.Validate(); err != nil {
		return fmt.Errorf("--injector-image: %w", err)
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
	d.reg, d.trust = reg, sec.trustDomain
	d.root = cfg.RootNamespace
	d.validate = cfg.Validate
	d.ctl, err = kube.NewController(kube.ControllerConfig{Kube: d.clients.Kube, Istio: d.clients.Istio, Dynamic: d.clients.Dynamic, Store: cfg.Store, Registry: reg,
		Validate: cfg.Validate, Domain: cfg.Domain, RootNamespace: cfg.RootNamespace, Logger: cfg.Logger})
	if err != nil {
		return err
	}
	cfg.ReadyGate = d.synced // /ready (the kubelet's probe) waits for the informers too
	if len(sec.tokens) > 0 {
		return errors.New("--bootstrap-token is for local mode: on Kubernetes workloads authenticate with service account tokens")
	}
	if sec.caDir == "" {
		dir, err := os.MkdirTemp("", "bowline-ca-")
		if err != nil {
			return fmt.Errorf("ca dir: %w", err)
		}
		sec.caDir, d.tmpDir = dir, dir
		d.secrets = kube.NewCASecrets(d.clients.Kube, cfg.RootNamespace, dir, cfg.Logger)
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if d.caSource, err = d.secrets.Prepare(ctx); err != nil {
			return err
		}
	}
	return nil
}

// setupCA runs after the CA is loaded: it saves a root the CA created, and
// makes TokenReview the CA's authenticator.
func (d *discoveryKube) setupCA(ctx context.Context, m *meshCA) error {
	if d.clients == nil || m == nil {
		return nil
	}
	d.mca = m
	m.authn = kube.NewTokenReviewer(d.clients.Kube, d.cfg.Logger)
	if d.secrets == nil || d.caSource != "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := d.secrets.Save(ctx)
	if errors.Is(err, kube.ErrAdopted) {
		return m.ca.Reload()
	}
	return err
}

// cleanup removes what setup made on disk.
func (d *discoveryKube) cleanup() {
	if d.tmpDir != "" {
		_ = os.RemoveAll(d.tmpDir)
	}
}

// xdsState is what the cluster's components read of the xDS server.
type xdsState interface {
	// Ready says whether the server has built its first mesh.
	Ready() bool
	// Distribution says which config version each connected proxy has.
	Distribution() map[string]uint64
}

// runBeside returns run extended with the cluster's components.
func (d *discoveryKube) runBeside(run func(context.Context) error, srv xdsState) func(context.Context) error {
	if d.ctl == nil {
		return run
	}
	return func(ctx context.Context) error {
		g, ctx := errgroup.WithContext(ctx)
		g.Go(func() error { return d.ctl.Run(ctx) })
		g.Go(func() error { return run(ctx) })
		if d.mca != nil {
			hosts := []string{ca.DefaultServingHost, ca.DefaultServingHost + "." + d.cfg.Domain, "istiod." + d.root, "istiod", "localhost", "127.0.0.1"}
			serving := d.mca.ca.NewServingCertificate(hosts)
			injector := &inject.Webhook{Config: d.injector, Logger: d.cfg.Logger,
				Mesh: func() *meshv1alpha1.MeshConfig { return d.ctl.MeshConfig().Config }}
			wh := kube.NewWebhookServer(d.webhookAddress, serving.GetCertificate,
				kube.WebhookMux(kube.NewValidationHandler(d.validate, d.cfg.Logger), injector, func() bool { return d.synced() && srv.Ready() }), d.cfg.Logger)
			g.Go(func() error { return wh.Run(ctx) })
		}
		if d.writeStatus {
			// Every replica reports what its proxies have; the leader's
			// status writer sums the reports.
			rep := kube.NewReporter(kube.ReporterConfig{Kube: d.clients.Kube, Namespace: d.root, Pod: podName(), Store: d.cfg.Store,
				Distribution: srv.Distribution, Logger: d.cfg.Logger})
			g.Go(func() error { return rep.Run(ctx) })
		}
		writers, err := d.writers()
		if err != nil {
			return err
		}
		if len(writers) > 0 {
			leader := kube.NewLeader(d.clients.Kube, d.root, podName(), d.cfg.Logger)
			g.Go(func() error {
				return leader.Run(ctx, func(ctx context.Context) error { return runAll(ctx, writers...) })
			})
		}
		return g.Wait()
	}
}

// writers are what the leader runs: with a CA the root publisher and the
// Gateway API deployer, and the status writer.
func (d *discoveryKube) writers() ([]func(context.Context) error, error) {
	var out []func(context.Context) error
	if d.mca != nil {
		roots := func() []byte { return ca.EncodeCertificates(d.mca.ca.TrustBundle()...) }
		pub := kube.NewPublisher(d.clients.Kube, roots, kube.WebhookConfigs{Validating: d.webhookConfigs, Mutating: d.injectorConfigs}, d.cfg.Logger)
		rev := ""
		if d.injector.Revision != "" && d.injector.Revision != "default" {
			rev = "-" + d.injector.Revision
		}
		gws, err := kube.NewGatewayDeployer(kube.GatewayDeployerConfig{Kube: d.clients.Kube, Dynamic: d.clients.Dynamic, Store: d.cfg.Store,
			Services: d.reg, Image: d.injector.Image, ImagePullPolicy: d.injector.ImagePullPolicy,
			Discovery: "istiod" + rev + "." + d.root + ".svc:15012", TrustDomain: d.trust, Domain: d.cfg.Domain,
			ServiceType: corev1.ServiceType(d.gatewayServiceType), Logger: d.cfg.Logger})
		if err != nil {
			return nil, err
		}
		out = append(out, pub.Run, gws.Run)
	}
	if d.writeStatus {
		sc := kube.StatusConfig{Client: d.clients.Dynamic, Kube: d.clients.Kube, Namespace: d.root, Store: d.cfg.Store, Logger: d.cfg.Logger}
		if d.enableAnalysis {
			sc.Analyze = d.analyze
		}
		out = append(out, kube.NewStatusWriter(sc).Run)
	}
	return out, nil
}

// analyze runs Istio's analyzers over the configuration in force and the
// cluster's services, as istiod's in-cluster analysis does, and returns the
// messages by object.
func (d *discoveryKube) analyze(snap *config.Snapshot) map[config.Key][]kube.ValidationMessage {
	var live []analysis.Service
	for _, s := range d.cfg.Registry.View().Services() {
		ports := make([]uint32, len(s.Ports))
		for i, p := range s.Ports {
			ports[i] = p.Number
		}
		live = append(live, analysis.Service{Host: s.Hostname, Namespace: s.Namespace, Ports: ports, ExportTo: s.ExportTo})
	}
	msgs := analysis.Analyze(analysis.Input{Objects: snap.Objects, Services: live},
		analysis.Options{Domain: d.cfg.Domain, RootNamespace: d.root, NoCA: d.mca == nil})
	out := map[config.Key][]kube.ValidationMessage{}
	for _, o := range snap.Objects {
		byName := o.Key()
		for _, m := range msgs {
			if m.Kind == o.GVK.Kind && m.Namespace == o.Meta.Namespace && m.Name == o.Meta.Name {
				out[byName] = append(out[byName], kube.ValidationMessage{Code: m.Type.Code, Level: strings.ToUpper(m.Type.Level.String()),
					DocumentationURL: m.Type.DocumentationURL()})
			}
		}
	}
	return out
}

// runAll runs tasks until ctx ends or one fails.
func runAll(ctx context.Context, tasks ...func(context.Context) error) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, t := range tasks {
		g.Go(func() error { return t(ctx) })
	}
	return g.Wait()
}

// synced reports whether the controller has published the cluster's state once.
func (d *discoveryKube) synced() bool {
	select {
	case <-d.ctl.Synced():
		return true
	default:
		return false
	}
}

// podName is this replica's name in leader election: $POD_NAME (the
// manifest sets it), else the host name (a pod's host name is its name).
func podName() string {
	if n := os.Getenv("POD_NAME"); n != "" {
		return n
	}
	h, err := os.Hostname()
	if err != nil {
		return "discovery"
	}
	return h
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sync/errgroup"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"

	"github.com/bowline-mesh/bowline/internal/ca"
	"github.com/bowline-mesh/bowline/internal/config"
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

// runBeside returns run extended with the cluster's components; ready
// says whether the server has built its first mesh.
func (d *discoveryKube) runBeside(run func(context.Context) error, ready func() bool) func(context.Context) error {
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
				kube.WebhookMux(kube.NewValidationHandler(d.validate, d.cfg.Logger), injector, func() bool { return d.synced() && ready() }), d.cfg.Logger)
			g.Go(func() error { return wh.Run(ctx) })
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
				return err
			}
			leader := kube.NewLeader(d.clients.Kube, d.root, podName(), d.cfg.Logger)
			g.Go(func() error {
				return leader.Run(ctx, func(ctx context.Context) error {
					lg, ctx := errgroup.WithContext(ctx)
					lg.Go(func() error { return pub.Run(ctx) })
					lg.Go(func() error { return gws.Run(ctx) })
					return lg.Wait()
				})
			})
		}
		return g.Wait()
	}
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

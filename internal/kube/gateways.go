package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/gatewayapi"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// Defaults of GatewayDeployerConfig.
const (
	// DefaultGatewayServiceType is Istio's type of a Gateway's Service.
	DefaultGatewayServiceType = corev1.ServiceTypeLoadBalancer
	// gatewayBatch gathers changes before a reconcile.
	gatewayBatch = 100 * time.Millisecond
	// gatewayResync reconciles everything again this often, repairing what
	// was changed or deleted by hand.
	gatewayResync = 30 * time.Second
)

// ServiceSource is what the deployer reads of the service registry.
// *registry.Registry implements it.
type ServiceSource interface {
	View() *registry.View
	Subscribe() (<-chan struct{}, func())
}

var _ ServiceSource = (*registry.Registry)(nil)

// GatewayDeployerConfig configures a GatewayDeployer.
type GatewayDeployerConfig struct {
	// Kube and Dynamic are the cluster's clients. Required.
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	// Store holds the Gateway API objects (the controller publishes them). Required.
	Store *config.Store
	// Services resolve backendRefs for route status. Required.
	Services ServiceSource
	// Image is the bowline image the gateway pods run. Required.
	Image string
	// ImagePullPolicy of the gateway pods; empty leaves it to Kubernetes.
	ImagePullPolicy corev1.PullPolicy
	// Discovery is the xDS and CA address the gateways use
	// (istiod.istio-system.svc:15012). Required.
	Discovery string
	// TrustDomain of the gateways' identities.
	TrustDomain string
	// Domain is the cluster domain; DefaultDomain when empty.
	Domain string
	// ServiceType of each Gateway's Service; DefaultGatewayServiceType when empty.
	ServiceType corev1.ServiceType
	// Logger receives INFO/DEBUG logs; discarded when nil.
	Logger *slog.Logger
}

// GatewayDeployer is Istio's automated gateway deployment and the Gateway
// API status writer: for every Gateway of a class whose controller is
// istio.io/gateway-controller it keeps a Deployment, Service and service
// account (owned by the Gateway), and it writes the status of the
// GatewayClasses, Gateways and routes it owns, the addresses of a Gateway
// taken from its Service. It also creates the GatewayClass istio, as
// istiod does. Only the leader runs it.
type GatewayDeployer struct {
	cfg GatewayDeployerConfig
	log *slog.Logger

	// Owned by Run.
	services    corelisters.ServiceLister
	deployments appslisters.DeploymentLister
	// applied maps a Gateway (namespace/name) to the hash of what was last
	// applied for it; written maps an object's key to the status last written.
	applied map[string]string
	written map[string]string
	class   bool // the GatewayClass istio exists (or was created)
}

// NewGatewayDeployer checks cfg and returns a deployer. It starts nothing.
func NewGatewayDeployer(cfg GatewayDeployerConfig) (*GatewayDeployer, error) {
	if cfg.Kube == nil || cfg.Dynamic == nil || cfg.Store == nil || cfg.Services == nil {
		return nil, errors.New("gateway deployer: no cluster clients, config store or services")
	}
	if cfg.Image == "" || cfg.Discovery == "" {
		return nil, errors.New("gateway deployer: no gateway image or discovery address")
	}
	if cfg.Domain == "" {
		cfg.Domain = DefaultDomain
	}
	if cfg.ServiceType == "" {
		cfg.ServiceType = DefaultGatewayServiceType
	}
	switch cfg.ServiceType {
	case corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort:
	default:
		return nil, fmt.Errorf("gateway deployer: service type %q: want LoadBalancer, ClusterIP or NodePort", cfg.ServiceType)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &GatewayDeployer{cfg: cfg, log: cfg.Logger}, nil
}

// Run reconciles until ctx ends: after every change of the config or the
// services, when a managed Deployment or Service changes (readiness, the
// address, a deletion by hand), and every gatewayResync (status).
func (g *GatewayDeployer) Run(ctx context.Context) error {
	g.applied, g.written, g.class = map[string]string{}, map[string]string{}, false
	wake := make(chan struct{}, 1)
	poke := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	f := informers.NewSharedInformerFactoryWithOptions(g.cfg.Kube, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = LabelGatewayManaged + "=" + gatewayManagedValue
	}))
	svcInf := f.Core().V1().Services()
	depInf := f.Apps().V1().Deployments()
	g.services, g.deployments = svcInf.Lister(), depInf.Lister()
	for _, inf := range []cache.SharedIndexInformer{svcInf.Informer(), depInf.Informer()} {
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: func(any) { poke() }, UpdateFunc: func(any, any) { poke() }, DeleteFunc: func(any) { poke() },
		}); err != nil {
			return fmt.Errorf("gateway deployer: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f.Start(ctx.Done())
	defer f.Shutdown()
	for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("gateway deployer: %v did not sync", typ)
		}
	}
	storeCh := g.cfg.Store.Subscribe(ctx)
	regCh, unsub := g.cfg.Services.Subscribe()
	defer unsub()
	resync := time.NewTicker(gatewayResync)
	defer resync.Stop()
	poke()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-storeCh:
		case <-regCh:
		case <-wake:
		case <-resync.C:
			g.written = map[string]string{}
		}
		t := time.NewTimer(gatewayBatch)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		g.reconcile(ctx)
	}
}

var (
	gvrGatewayClass = schema.GroupVersionResource{Group: config.GroupGatewayAPI, Version: gatewayAPIVersion, Resource: "gatewayclasses"}
	gvrGateway      = schema.GroupVersionResource{Group: config.GroupGatewayAPI, Version: gatewayAPIVersion, Resource: "gateways"}
)

// gvrOf is the resource of a Gateway API kind.
func gvrOf(kind string) schema.GroupVersionResource {
	for r, k := range gatewayAPIResources {
		if k == kind {
			return schema.GroupVersionResource{Group: config.GroupGatewayAPI, Version: gatewayAPIVersion, Resource: r}
		}
	}
	return schema.GroupVersionResource{}
}

// reconcile makes the cluster match the config once. Failures are logged
// and retried on the next round (their caches are not updated).
func (g *GatewayDeployer) reconcile(ctx context.Context) {
	objs := g.cfg.Store.Current().Objects
	if !g.class {
		g.ensureClass(ctx, objs)
	}
	out := gatewayapi.Translate(objs, g.cfg.Services.View().Services(), gatewayapi.Options{Domain: g.cfg.Domain, Deployed: true})
	gws := map[string]*config.Object{}
	for _, o := range objs {
		if o.IsGatewayAPI() && o.GVK.Kind == config.KindGateway {
			gws[o.Meta.Namespace+"/"+o.Meta.Name] = o
		}
	}
	for key := range g.applied {
		if gws[key] == nil {
			delete(g.applied, key) // deleted: its objects go with it (owner references)
		}
	}
	for _, st := range out.Status {
		if st.Kind != config.KindGateway {
			continue
		}
		o := gws[st.Namespace+"/"+st.Name]
		if o == nil {
			continue
		}
		spec := o.Spec.(*gwv1.GatewaySpec)
		name, addrs, ready := g.deploy(ctx, o, spec)
		g.writeGatewayStatus(ctx, st, name, addrs, ready)
	}
	for _, st := range out.Status {
		switch st.Kind {
		case config.KindGateway:
		case config.KindGatewayClass:
			g.writeStatus(ctx, st, func(u *unstructured.Unstructured) (any, error) {
				return &gwv1.GatewayClassStatus{Conditions: mergeConditions(conditionsOf(u, "status", "conditions"), st.Conditions)}, nil
			})
		default:
			g.writeRouteStatus(ctx, st)
		}
	}
}

// ensureClass creates the GatewayClass istio when the cluster has none, as
// istiod does at start.
func (g *GatewayDeployer) ensureClass(ctx context.Context, objs []*config.Object) {
	for _, o := range objs {
		if o.IsGatewayAPI() && o.GVK.Kind == config.KindGatewayClass && o.Meta.Name == gatewayapi.DefaultClassName {
			g.class = true
			return
		}
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": gwv1.GroupVersion.String(), "kind": "GatewayClass",
		"metadata": map[string]any{"name": gatewayapi.DefaultClassName},
		"spec": map[string]any{"controllerName": gatewayapi.ControllerName,
			"description": "The default Istio GatewayClass, served by Bowline"},
	}}
	_, err := g.cfg.Dynamic.Resource(gvrGatewayClass).Create(ctx, u, metav1.CreateOptions{FieldManager: FieldManager})
	switch {
	case err == nil:
		g.log.Info("gatewayclass created", slog.String(attrName, gatewayapi.DefaultClassName))
		g.class = true
	case apierrors.IsAlreadyExists(err):
		g.class = true
	default:
		// the CRDs may not be installed yet: tried again next round
		g.log.Debug("gatewayclass not created", slog.String(attrName, gatewayapi.DefaultClassName), slog.String(attrError, err.Error()))
	}
}

// deploy applies the Gateway's deployment when it changed and returns its
// name, the Gateway's addresses as its Service has them (none while
// pending) and whether a gateway pod is ready.
func (g *GatewayDeployer) deploy(ctx context.Context, o *config.Object, spec *gwv1.GatewaySpec) (string, []gwv1.GatewayStatusAddress, bool) {
	key := o.Meta.Namespace + "/" + o.Meta.Name
	name := deployName(o.Meta.Name, string(spec.GatewayClassName))
	want := hashOf(o.Meta.Generation, spec.Listeners, spec.GatewayClassName, g.cfg.Image, g.cfg.ImagePullPolicy, g.cfg.Discovery, g.cfg.TrustDomain, g.cfg.ServiceType)
	_, depErr := g.deployments.Deployments(o.Meta.Namespace).Get(name)
	_, svcErr := g.services.Services(o.Meta.Namespace).Get(name)
	if g.applied[key] != want || depErr != nil || svcErr != nil { // changed, or deleted by hand
		if err := g.apply(ctx, o, spec); err != nil {
			g.log.Info("gateway deployment not applied", slog.String(attrNamespace, o.Meta.Namespace), slog.String(attrName, o.Meta.Name), slog.String(attrError, err.Error()))
		} else {
			g.applied[key] = want
		}
	}
	ready := false
	if d, err := g.deployments.Deployments(o.Meta.Namespace).Get(name); err == nil {
		ready = deploymentReady(d)
	}
	svc, err := g.services.Services(o.Meta.Namespace).Get(name)
	if err != nil {
		return name, nil, ready
	}
	return name, serviceAddresses(svc), ready
}

// apply server-side applies the Gateway's service account, Deployment and
// Service, owned by the Gateway (its uid read from the cluster).
func (g *GatewayDeployer) apply(ctx context.Context, o *config.Object, spec *gwv1.GatewaySpec) error {
	cur, err := g.cfg.Dynamic.Resource(gvrGateway).Namespace(o.Meta.Namespace).Get(ctx, o.Meta.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	d := g.renderGateway(gatewayTarget{namespace: o.Meta.Namespace, name: o.Meta.Name, class: string(spec.GatewayClassName), uid: cur.GetUID(), listeners: spec.Listeners})
	objs, err := d.objects()
	if err != nil {
		return err
	}
	for _, u := range objs {
		gvr := schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}
		switch u.GetKind() {
		case "Deployment":
			gvr = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
		case "Service":
			gvr = schema.GroupVersionResource{Version: "v1", Resource: "services"}
		}
		if _, err := g.cfg.Dynamic.Resource(gvr).Namespace(u.GetNamespace()).Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: FieldManager, Force: true}); err != nil {
			return fmt.Errorf("apply %s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
	}
	g.log.Info("gateway deployment applied", slog.String(attrNamespace, o.Meta.Namespace), slog.String(attrName, d.deploy.Name))
	return nil
}

// serviceAddresses are a Gateway's addresses from its Service: the load
// balancer's when it has them, else (ClusterIP, NodePort, or a load
// balancer not yet provisioned on a cluster without one) the cluster IPs.
func serviceAddresses(svc *corev1.Service) []gwv1.GatewayStatusAddress {
	ipType, hostType := gwv1.IPAddressType, gwv1.HostnameAddressType
	var out []gwv1.GatewayStatusAddress
	for _, in := range svc.Status.LoadBalancer.Ingress {
		switch {
		case in.IP != "":
			out = append(out, gwv1.GatewayStatusAddress{Type: &ipType, Value: in.IP})
		case in.Hostname != "":
			out = append(out, gwv1.GatewayStatusAddress{Type: &hostType, Value: in.Hostname})
		}
	}
	if len(out) > 0 {
		return out
	}
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	for _, ip := range ips {
		if ip != corev1.ClusterIPNone {
			out = append(out, gwv1.GatewayStatusAddress{Type: &ipType, Value: ip})
		}
	}
	return out
}

// hashOf is a short content hash of values (JSON).
func hashOf(values ...any) string {
	b, _ := json.Marshal(values)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	istioclient "istio.io/client-go/pkg/clientset/versioned"
	istioinformers "istio.io/client-go/pkg/informers/externalversions"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// SourceName is the config store source the controller publishes as.
const SourceName = "kubernetes"

// Defaults of ControllerConfig.
const (
	DefaultDomain        = "cluster.local"
	DefaultRootNamespace = "istio-system"
	// DefaultBatch is how long the controller gathers informer events
	// before it publishes them together.
	DefaultBatch = 50 * time.Millisecond
)

// ServiceSink receives what the cluster contributes to the service
// registry. *registry.Registry implements it.
type ServiceSink interface {
	// SetKubernetes replaces the cluster's services and pods.
	SetKubernetes(services []*registry.Service, pods []registry.Workload)
}

var _ ServiceSink = (*registry.Registry)(nil)

// ControllerConfig configures a Controller.
type ControllerConfig struct {
	// Kube and Istio are the cluster's clients. Required.
	Kube  kubernetes.Interface
	Istio istioclient.Interface
	// Dynamic reads the Gateway API kinds (once their CRDs are served); nil
	// leaves them unread.
	Dynamic dynamic.Interface
	// Store receives the Istio objects, as source SourceName. Required.
	Store *config.Store
	// Registry receives Services, their endpoints and pods. Required.
	Registry ServiceSink
	// Validate checks the Istio objects (validation.Objects); nil accepts
	// what decodes.
	Validate config.Validator
	// Domain is the cluster domain of Service host names; DefaultDomain when empty.
	Domain string
	// RootNamespace holds the `istio` MeshConfig ConfigMap; DefaultRootNamespace when empty.
	RootNamespace string
	// Batch is how long events are gathered before publishing; DefaultBatch when zero.
	Batch time.Duration
	// Logger receives INFO/DEBUG logs; discarded when nil.
	Logger *slog.Logger
}

// Controller keeps the config store and the service registry in step with
// a cluster through informers. Build it with NewController and start it
// with Run.
type Controller struct {
	cfg ControllerConfig
	log *slog.Logger

	synced chan struct{}

	mu sync.Mutex
	// Dirty state since the last publish, set by informer handlers.
	dirtyConfig bool
	dirtyAll    bool
	dirtyNS     map[string]bool
	wake        chan struct{}

	// Owned by the sync loop.
	mesh       *MeshConfig
	parsedObjs map[config.Key]parsed
	services   map[string]*registry.Service // by namespace/name
	svcNS      map[string][]string          // namespace -> service keys
	listers    listers

	meshMu  sync.Mutex
	current *MeshConfig

	gwMu       sync.Mutex
	gatewayAPI []gatewayAPILister
}

type listers struct {
	services   corelisters.ServiceLister
	slices     discoverylisters.EndpointSliceLister
	pods       corelisters.PodLister
	namespaces corelisters.NamespaceLister
	nodes      corelisters.NodeLister
	configMaps corelisters.ConfigMapLister
	secrets    corelisters.SecretLister
	istio      []istioLister
}

type istioLister struct {
	kind  istioKind
	store cache.Store
}

// NewController checks cfg and returns a controller. It starts nothing.
func NewController(cfg ControllerConfig) (*Controller, error) {
	if cfg.Kube == nil || cfg.Istio == nil {
		return nil, errors.New("kubernetes controller: no cluster clients")
	}
	if cfg.Store == nil || cfg.Registry == nil {
		return nil, errors.New("kubernetes controller: no config store or registry")
	}
	if cfg.Validate == nil {
		cfg.Validate = func(objs []*config.Object) ([]*config.Object, config.Problems) { return objs, nil }
	}
	if cfg.Domain == "" {
		cfg.Domain = DefaultDomain
	}
	if cfg.RootNamespace == "" {
		cfg.RootNamespace = DefaultRootNamespace
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	empty, _ := ParseMeshConfig("")
	return &Controller{cfg: cfg, log: cfg.Logger, synced: make(chan struct{}), dirtyNS: map[string]bool{},
		wake: make(chan struct{}, 1), mesh: empty, current: empty, parsedObjs: map[config.Key]parsed{},
		services: map[string]*registry.Service{}, svcNS: map[string][]string{}}, nil
}

// Synced is closed once the caches have synced and the first state is published.
func (c *Controller) Synced() <-chan struct{} { return c.synced }

// MeshConfig returns the MeshConfig in force (from the `istio` ConfigMap;
// empty when there is none).
func (c *Controller) MeshConfig() *MeshConfig {
	c.meshMu.Lock()
	defer c.meshMu.Unlock()
	return c.current
}

// Run starts the informers, publishes the cluster's state once their
// caches have synced, then again after every batch of changes until ctx
// ends.
func (c *Controller) Run(ctx context.Context) error {
	kf := informers.NewSharedInformerFactory(c.cfg.Kube, 0)
	cmf := informers.NewSharedInformerFactoryWithOptions(c.cfg.Kube, 0, informers.WithNamespace(c.cfg.RootNamespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", MeshConfigMapName).String()
		}))
	isf := istioinformers.NewSharedInformerFactory(c.cfg.Istio, 0)

	nsOf := func(obj any) string {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if m, ok := obj.(metav1.Object); ok {
			return m.GetNamespace()
		}
		return ""
	}
	handle := func(inf cache.SharedIndexInformer, mark func(obj any)) error {
		_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    mark,
			UpdateFunc: func(_, obj any) { mark(obj) },
			DeleteFunc: mark,
		})
		return err
	}
	markNS := func(obj any) { c.mark(func() { c.dirtyNS[nsOf(obj)] = true }) }
	markAll := func(any) { c.mark(func() { c.dirtyAll, c.dirtyConfig = true, true }) }
	markConfig := func(any) { c.mark(func() { c.dirtyConfig = true }) }

	svcInf := kf.Core().V1().Services()
	sliceInf := kf.Discovery().V1().EndpointSlices()
	podInf := kf.Core().V1().Pods()
	nsInf := kf.Core().V1().Namespaces()
	nodeInf := kf.Core().V1().Nodes()
	cmInf := cmf.Core().V1().ConfigMaps()
	secretInf := kf.Core().V1().Secrets()
	c.listers = listers{services: svcInf.Lister(), slices: sliceInf.Lister(), pods: podInf.Lister(),
		namespaces: nsInf.Lister(), nodes: nodeInf.Lister(), configMaps: cmInf.Lister(), secrets: secretInf.Lister()}
	var errs []error
	errs = append(errs, handle(svcInf.Informer(), markNS), handle(sliceInf.Informer(), markNS), handle(podInf.Informer(), markNS),
		handle(nsInf.Informer(), markAll), handle(nodeInf.Informer(), markAll), handle(cmInf.Informer(), markAll),
		handle(secretInf.Informer(), markConfig))
	for _, k := range istioKinds {
		inf := k.informer(isf)
		errs = append(errs, handle(inf, markConfig))
		c.listers.istio = append(c.listers.istio, istioLister{kind: k, store: inf.GetStore()})
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kubernetes informers: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	kf.Start(ctx.Done())
	cmf.Start(ctx.Done())
	isf.Start(ctx.Done())
	defer func() {
		cancel()
		kf.Shutdown()
		cmf.Shutdown()
		isf.Shutdown()
	}()
	for _, synced := range []map[string]bool{typeNames(kf.WaitForCacheSync(ctx.Done())), typeNames(cmf.WaitForCacheSync(ctx.Done())), typeNames(isf.WaitForCacheSync(ctx.Done()))} {
		for name, ok := range synced {
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("kubernetes informers: %s did not sync", name)
			}
		}
	}
	gwDone := make(chan struct{})
	defer func() { cancel(); <-gwDone }()
	go func() {
		defer close(gwDone)
		if err := c.runGatewayAPI(ctx, markConfig); err != nil {
			c.log.Info("gateway api not read", slog.String(attrError, err.Error()))
		}
	}()
	c.mark(func() { c.dirtyAll, c.dirtyConfig = true, true })
	c.sync()
	close(c.synced)
	c.log.Info("kubernetes caches synced")
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.wake:
		}
		t := time.NewTimer(c.cfg.Batch)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		c.sync()
	}
}

func typeNames[T comparable](m map[T]bool) map[string]bool {
	out := make(map[string]bool, len(m))
	for t, ok := range m {
		out[fmt.Sprint(t)] = ok
	}
	return out
}

// mark records a change under the lock and wakes the sync loop.
func (c *Controller) mark(f func()) {
	c.mu.Lock()
	f()
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// sync publishes what changed since the last call.
func (c *Controller) sync() {
	c.mu.Lock()
	all, cfgDirty, dirtyNS := c.dirtyAll, c.dirtyConfig, c.dirtyNS
	c.dirtyAll, c.dirtyConfig, c.dirtyNS = false, false, map[string]bool{}
	c.mu.Unlock()
	if all {
		if c.syncMeshConfig() {
			cfgDirty = true
		}
	}
	visible := c.visibleNamespaces()
	if cfgDirty {
		c.syncConfig(visible)
	}
	if all || len(dirtyNS) > 0 {
		c.syncServices(visible, all, dirtyNS)
	}
}

// syncMeshConfig reads the `istio` ConfigMap; it reports whether the
// MeshConfig changed. An invalid one is logged and the last good one kept.
func (c *Controller) syncMeshConfig() bool {
	raw := ""
	cm, err := c.listers.configMaps.ConfigMaps(c.cfg.RootNamespace).Get(MeshConfigMapName)
	switch {
	case err == nil:
		raw = cm.Data[meshConfigKey]
	case !apierrors.IsNotFound(err):
		c.log.Info("mesh config unreadable, keeping the last one", slog.String(attrError, err.Error()))
		return false
	}
	if raw == c.mesh.Raw {
		return false
	}
	mc, err := ParseMeshConfig(raw)
	if err != nil {
		c.log.Info("mesh config invalid, keeping the last good one", slog.String(attrNamespace, c.cfg.RootNamespace), slog.String(attrError, err.Error()))
		return false
	}
	c.mesh = mc
	c.meshMu.Lock()
	c.current = mc
	c.meshMu.Unlock()
	c.log.Info("mesh config loaded", slog.String(attrNamespace, c.cfg.RootNamespace), slog.Int("discoverySelectors", len(mc.namespaces)))
	return true
}

// visibleNamespaces returns the namespaces discovery reads
// (discoverySelectors), or nil when every namespace is visible. The root
// namespace is always visible.
func (c *Controller) visibleNamespaces() map[string]bool {
	if len(c.mesh.namespaces) == 0 {
		return nil
	}
	out := map[string]bool{c.cfg.RootNamespace: true}
	nss, _ := c.listers.namespaces.List(labels.Everything())
	for _, ns := range nss {
		if c.mesh.namespaces.matches(ns.Labels) {
			out[ns.Name] = true
		}
	}
	return out
}

func isVisible(visible map[string]bool, ns string) bool { return visible == nil || visible[ns] }

// syncConfig publishes the Istio objects of visible namespaces. Objects
// whose resourceVersion did not change keep their decoded *config.Object.
func (c *Controller) syncConfig(visible map[string]bool) {
	var objs []*config.Object
	var problems config.Problems
	next := make(map[config.Key]parsed, len(c.parsedObjs))
	for _, l := range c.listers.istio {
		for _, item := range l.store.List() {
			m, ok := item.(metav1.Object)
			if !ok || !isVisible(visible, m.GetNamespace()) {
				continue
			}
			key := config.Key{Kind: l.kind.kind, Namespace: m.GetNamespace(), Name: m.GetName()}
			p, ok := c.parsedObjs[key]
			if !ok || p.resourceVersion != m.GetResourceVersion() {
				p = parseIstioObject(l.kind, item, c.cfg.Validate)
				if len(p.problems) > 0 {
					c.log.Debug("cluster object has problems", slog.String(attrKind, key.Kind), slog.String(attrNamespace, key.Namespace),
						slog.String(attrName, key.Name), slog.String(attrError, p.problems.Error()))
				}
			}
			next[key] = p
			objs = append(objs, p.objs...)
			problems = append(problems, p.problems...)
		}
	}
	// reuse returns the parsed object of key when its resourceVersion is rv.
	reuse := func(key config.Key, rv string, parse func() parsed) {
		p, ok := c.parsedObjs[key]
		if !ok || p.resourceVersion != rv {
			p = parse()
		}
		next[key] = p
		objs = append(objs, p.objs...)
		problems = append(problems, p.problems...)
	}
	// Namespaces with their labels, for allowedRoutes namespace selectors.
	nss, _ := c.listers.namespaces.List(labels.Everything())
	for _, ns := range nss {
		if isVisible(visible, ns.Name) {
			objs = append(objs, config.NamespaceObject(ns.Name, ns.Labels))
		}
	}
	secrets, _ := c.listers.secrets.List(labels.Everything())
	for _, s := range secrets {
		if !isVisible(visible, s.Namespace) || !credentialSecret(s) {
			continue
		}
		reuse(config.Key{Kind: config.KindSecret, Namespace: s.Namespace, Name: s.Name}, s.ResourceVersion,
			func() parsed { return parseSecret(s, c.cfg.Validate) })
	}
	for _, l := range c.gatewayAPIListers() {
		for _, item := range l.store.List() {
			u, ok := item.(*unstructured.Unstructured)
			if !ok || (u.GetNamespace() != "" && !isVisible(visible, u.GetNamespace())) {
				continue
			}
			reuse(config.Key{Group: config.GroupGatewayAPI, Kind: l.kind, Namespace: u.GetNamespace(), Name: u.GetName()}, u.GetResourceVersion(),
				func() parsed { return parseGatewayAPIObject(l.kind, u, c.cfg.Validate) })
		}
	}
	c.parsedObjs = next
	snap := c.cfg.Store.PublishFrom(SourceName, objs, problems, nil)
	c.log.Info("cluster config published", slog.Uint64("version", snap.Version), slog.Int(attrObjects, len(objs)), slog.Int(attrProblems, len(problems)))
}

// syncServices rebuilds the services of the dirty namespaces (every
// namespace when all) and hands every service and pod to the registry.
func (c *Controller) syncServices(visible map[string]bool, all bool, dirtyNS map[string]bool) {
	nodeLabels := map[string]map[string]string{}
	nodes, _ := c.listers.nodes.List(labels.Everything())
	for _, n := range nodes {
		nodeLabels[n.Name] = n.Labels
	}
	lookup := func(ns, name string) (podInfo, bool) {
		pod, err := c.listers.pods.Pods(ns).Get(name)
		if err != nil {
			return podInfo{}, false
		}
		sa := pod.Spec.ServiceAccountName
		if sa == "" {
			sa = "default"
		}
		return podInfo{labels: pod.Labels, serviceAccount: sa, locality: podLocality(pod, nodeLabels[pod.Spec.NodeName]), network: pod.Labels[labelNetwork]}, true
	}
	rebuild := func(ns string) {
		for _, k := range c.svcNS[ns] {
			delete(c.services, k)
		}
		delete(c.svcNS, ns)
		if !isVisible(visible, ns) {
			return
		}
		svcs, _ := c.listers.services.Services(ns).List(labels.Everything())
		if len(svcs) == 0 {
			return
		}
		bySvc := map[string][]*discoveryv1.EndpointSlice{}
		eps, _ := c.listers.slices.EndpointSlices(ns).List(labels.Everything())
		for _, s := range eps {
			if name := s.Labels[labelServiceName]; name != "" {
				bySvc[name] = append(bySvc[name], s)
			}
		}
		for _, svc := range svcs {
			k := ns + "/" + svc.Name
			c.services[k] = convertService(svc, bySvc[svc.Name], c.cfg.Domain, lookup)
			c.svcNS[ns] = append(c.svcNS[ns], k)
		}
	}
	if all {
		c.services, c.svcNS = map[string]*registry.Service{}, map[string][]string{}
		svcs, _ := c.listers.services.List(labels.Everything())
		nss := map[string]bool{}
		for _, s := range svcs {
			nss[s.Namespace] = true
		}
		for ns := range nss {
			rebuild(ns)
		}
	} else {
		for ns := range dirtyNS {
			rebuild(ns)
		}
	}
	keys := make([]string, 0, len(c.services))
	for k := range c.services {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	services := make([]*registry.Service, 0, len(keys))
	for _, k := range keys {
		services = append(services, c.services[k])
	}
	var pods []registry.Workload
	podList, _ := c.listers.pods.List(labels.Everything())
	for _, p := range podList {
		if !isVisible(visible, p.Namespace) {
			continue
		}
		if w, ok := podWorkload(p, nodeLabels[p.Spec.NodeName]); ok {
			pods = append(pods, w)
		}
	}
	slices.SortFunc(pods, func(a, b registry.Workload) int { return strings.Compare(a.ID, b.ID) })
	c.cfg.Registry.SetKubernetes(services, pods)
	c.log.Debug("cluster services published", slog.Int(attrServices, len(services)), slog.Int(attrPods, len(pods)))
}

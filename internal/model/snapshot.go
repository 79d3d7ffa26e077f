package model

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/gatewayapi"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// Log attribute keys.
const (
	attrObject  = "object"
	attrReason  = "reason"
	attrVersion = "version"
)

// Defaults for Options.
const (
	DefaultDomain        = "cluster.local"
	DefaultRootNamespace = "istio-system"
	// MeshGateway is the reserved gateway name for sidecars.
	MeshGateway = "mesh"
)

// Options tune Build.
type Options struct {
	// Domain is the cluster domain; DefaultDomain if empty.
	Domain string
	// RootNamespace holds mesh-wide defaults (Sidecar, DestinationRule); DefaultRootNamespace if empty.
	RootNamespace string
	// Log receives DEBUG notes about config Build had to skip; nil discards them.
	Log *slog.Logger
	// Memo, when set, carries content hashes between Builds (see Memo).
	Memo *Memo
	// NoCA says no CA issues workload certificates (discovery --insecure-xds
	// without --ca-dir, up --insecure): nothing is generated that needs one
	// (Snapshot.NoCA).
	NoCA bool
	// GatewayDeployments says every Gateway API Gateway has its own gateway
	// deployment (Kubernetes; gatewayapi.Options.Deployed); false is local
	// mode's one ingress gateway.
	GatewayDeployments bool
}

// ServiceView is what Build needs from the service registry.
type ServiceView interface {
	// Services returns every service; Build does not modify them.
	Services() []*registry.Service
}

var _ ServiceView = (*registry.View)(nil)

// Snapshot is the immutable mesh model: configuration resolved with Istio's
// rules plus the services. It is safe for concurrent use; nothing reachable
// from it may be modified.
type Snapshot struct {
	version       string
	domain        string
	rootNamespace string
	services      []*registry.Service // sorted by hostname (stable)
	// objects are the config objects, sorted (config.SortObjects); Diff compares them.
	objects []*config.Object
	// byHost indexes services by hostname, in services order.
	byHost           map[string][]*registry.Service
	virtualServices  []*VirtualService
	destinationRules []*DestinationRule
	drByHost         map[string][]*DestinationRule // exact hosts
	drWildcards      []*DestinationRule            // wildcard hosts
	gateways         []*Gateway
	sidecars         []*Sidecar
	problems         []string
	// security holds AuthorizationPolicy and RequestAuthentication (security.go).
	security securityConfig
	// mesh is the MeshConfig in force (meshconfig.go).
	mesh *MeshConfig
	// selectors are the label selectors outbound configuration depends on (selectors.go).
	selectors []labelSelector
	// noCA: no workload certificates exist (noca.go).
	noCA bool
	// byIP indexes endpoints by address (EndpointsAt), built on first use.
	byIPOnce sync.Once
	byIP     map[string][]endpointPos
	// telemetries are the Telemetry resources, sorted (telemetry.go).
	telemetries []*Telemetry
	// envoyFilters are the EnvoyFilters, sorted by namespace and name (envoyfilter.go).
	envoyFilters []*EnvoyFilter
	// secrets are the Secrets gateway credentials come from (secret.go).
	secrets secretIndex
}

// Build resolves objs (any kinds; those that shape traffic are used) and the
// services into a Snapshot. Objects are assumed validated; what cannot be
// resolved (a missing delegate, say) is skipped and listed in Problems.
func Build(objs []*config.Object, services ServiceView, opts Options) *Snapshot {
	if opts.Domain == "" {
		opts.Domain = DefaultDomain
	}
	if opts.RootNamespace == "" {
		opts.RootNamespace = DefaultRootNamespace
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sorted := slices.Clone(objs)
	config.SortObjects(sorted)

	s := &Snapshot{domain: opts.Domain, rootNamespace: opts.RootNamespace, mesh: meshConfigFrom(sorted), objects: sorted}
	if s.mesh.Source == "defaults" {
		s.mesh.RootNamespace = opts.RootNamespace
	} else if s.mesh.RootNamespace != "" {
		s.rootNamespace = s.mesh.RootNamespace
	}
	if services != nil {
		s.services = services.Services()
	}
	if !slices.IsSortedFunc(s.services, compareHost) {
		s.services = slices.Clone(s.services)
		slices.SortStableFunc(s.services, compareHost)
	}
	s.byHost = make(map[string][]*registry.Service, len(s.services))
	for _, svc := range s.services {
		s.byHost[svc.Hostname] = append(s.byHost[svc.Hostname], svc)
	}
	// Gateway API objects become Istio Gateways and VirtualServices, as in istiod.
	translated := sorted
	if gw := gatewayapi.Translate(sorted, s.services, gatewayapi.Options{Domain: opts.Domain, Deployed: opts.GatewayDeployments}); len(gw.Objects) > 0 {
		translated = append(slices.Clone(sorted), gw.Objects...)
		config.SortObjects(translated)
	}
	var vsObjs []*config.Object
	var efProblems []string
	for _, o := range translated {
		switch spec := o.Spec.(type) {
		case *networking.VirtualService:
			vsObjs = append(vsObjs, o)
		case *networking.DestinationRule:
			s.destinationRules = append(s.destinationRules, newDestinationRule(o, spec, opts.Domain))
		case *networking.Gateway:
			s.gateways = append(s.gateways, &Gateway{Name: o.Meta.Name, Namespace: o.Meta.Namespace,
				Selector: spec.GetSelector(), Servers: spec.GetServers(),
				NamespaceScoped: o.Meta.Annotations[gatewayapi.NamespaceScopedAnnotation] == "true"})
		case *networking.Sidecar:
			s.sidecars = append(s.sidecars, newSidecar(o, spec))
		case *telemetry.Telemetry:
			s.telemetries = append(s.telemetries, &Telemetry{Name: o.Meta.Name, Namespace: o.Meta.Namespace, Spec: spec})
		case *networking.EnvoyFilter:
			ef, problems := newEnvoyFilter(o, spec)
			s.envoyFilters = append(s.envoyFilters, ef)
			efProblems = append(efProblems, problems...)
		case *config.RateLimitSpec:
			// The EnvoyFilter it stands for, through the same engine (ratelimit.go).
			efSpec, err := RateLimitEnvoyFilter(o.Meta.Namespace, opts.Domain, spec)
			if err != nil {
				efProblems = append(efProblems, fmt.Sprintf("%s: %v", o.Ref(), err))
				continue
			}
			ef, problems := newEnvoyFilter(o, efSpec)
			ef.RateLimit = true
			s.envoyFilters = append(s.envoyFilters, ef)
			efProblems = append(efProblems, problems...)
		case *config.Secret:
			if s.secrets == nil {
				s.secrets = secretIndex{}
			}
			s.secrets[o.Meta.Namespace+"/"+o.Meta.Name] = spec
		default:
			s.security.addSecurity(o)
		}
	}
	s.virtualServices, s.problems = buildVirtualServices(vsObjs, opts.Domain)
	s.problems = append(s.problems, efProblems...)
	s.problems = append(s.problems, s.credentialProblems()...)
	if s.noCA = opts.NoCA; s.noCA {
		s.problems = append(s.problems, mtlsWithoutCAProblems(sorted)...)
	}
	s.indexDestinationRules()
	s.indexSelectors()
	for _, p := range s.problems {
		log.Debug("config skipped", slog.String(attrReason, p))
	}
	opts.Memo.rotate()
	s.version = contentHash(sorted, s.services, opts)
	log.Debug("mesh snapshot built", slog.String(attrVersion, s.version))
	return s
}

// Version changes if and only if the snapshot's inputs change.
func (s *Snapshot) Version() string { return s.version }

// Domain is the cluster domain.
func (s *Snapshot) Domain() string { return s.domain }

// RootNamespace is the mesh config root namespace.
func (s *Snapshot) RootNamespace() string { return s.rootNamespace }

// Problems lists config Build skipped, one message each naming the resource.
func (s *Snapshot) Problems() []string { return s.problems }

// Services returns every service.
func (s *Snapshot) Services() []*registry.Service { return s.services }

// ServicesFor returns the services visible to p (exportTo) and in its
// Sidecar scope, sorted by hostname. For a hostname defined in several
// namespaces the one in p's namespace wins (Istio prefers the proxy's
// namespace on conflicts), else the first.
func (s *Snapshot) ServicesFor(p *Proxy) []*registry.Service {
	scope := s.ScopeFor(p)
	out := make([]*registry.Service, 0, len(s.byHost))
	visible := func(svc *registry.Service) bool {
		return exportedTo(svc.ExportTo, svc.Namespace, p.Namespace) && scope.Allows(svc.Namespace, svc.Hostname)
	}
	for i := 0; i < len(s.services); {
		group := s.byHost[s.services[i].Hostname]
		i += len(group)
		if pick := pickLocal(p, group, visible); pick != nil {
			out = append(out, pick)
		}
	}
	return out
}

// pickLocal returns the first service of group (one hostname) that ok
// accepts, trying those in p's namespace first.
func pickLocal(p *Proxy, group []*registry.Service, ok func(*registry.Service) bool) *registry.Service {
	if len(group) == 1 {
		if ok(group[0]) {
			return group[0]
		}
		return nil
	}
	for _, svc := range group {
		if svc.Namespace == p.Namespace && ok(svc) {
			return svc
		}
	}
	for _, svc := range group {
		if svc.Namespace != p.Namespace && ok(svc) {
			return svc
		}
	}
	return nil
}

func compareHost(a, b *registry.Service) int { return strings.Compare(a.Hostname, b.Hostname) }

// LookupService returns the service named host visible to p (ignoring
// Sidecar scope, as Istio does for route destinations), or nil.
func (s *Snapshot) LookupService(p *Proxy, host string) *registry.Service {
	return pickLocal(p, s.byHost[host], func(svc *registry.Service) bool {
		return exportedTo(svc.ExportTo, svc.Namespace, p.Namespace)
	})
}

// Gateway is a resolved Gateway object.
type Gateway struct {
	Name, Namespace string
	// Selector picks the router proxies that serve this Gateway.
	Selector map[string]string
	Servers  []*networking.Server
	// NamespaceScoped: only routers of Namespace are selected (the Istio
	// Gateways generated for a deployed Gateway API Gateway).
	NamespaceScoped bool
}

// Ref returns "namespace/name", the form VirtualService.gateways resolve to.
func (g *Gateway) Ref() string { return g.Namespace + "/" + g.Name }

// Gateways returns every Gateway (Istio's and those translated from the
// Gateway API), sorted by namespace and name.
func (s *Snapshot) Gateways() []*Gateway { return s.gateways }

// GatewaysFor returns the Gateways whose selector matches the router p's labels.
func (s *Snapshot) GatewaysFor(p *Proxy) []*Gateway {
	if p.Type != Router {
		return nil
	}
	var out []*Gateway
	for _, g := range s.gateways {
		if registry.LabelsMatch(g.Selector, p.Labels) && (!g.NamespaceScoped || g.Namespace == p.Namespace) {
			out = append(out, g)
		}
	}
	return out
}

func contentHash(objs []*config.Object, services []*registry.Service, opts Options) string {
	h := sha256.New()
	writeParts(h, opts.Domain, opts.RootNamespace, strconv.FormatBool(opts.NoCA), strconv.FormatBool(opts.GatewayDeployments))
	for _, o := range objs {
		sum := opts.Memo.object(o)
		h.Write(sum[:])
	}
	for _, svc := range services {
		sum := opts.Memo.service(svc)
		h.Write(sum[:])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func writeParts(h hash.Hash, parts ...string) {
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
}

// objectSum hashes what Build reads of a config object.
func objectSum(o *config.Object) [sha256.Size]byte {
	h := sha256.New()
	write := func(parts ...string) { writeParts(h, parts...) }
	write(o.GVK.Group, o.GVK.Kind, o.Meta.Namespace, o.Meta.Name)
	for _, k := range slices.Sorted(maps.Keys(o.Meta.Labels)) {
		write(k, o.Meta.Labels[k])
	}
	write("|")
	for _, k := range slices.Sorted(maps.Keys(o.Meta.Annotations)) {
		write(k, o.Meta.Annotations[k])
	}
	if m, ok := o.Spec.(proto.Message); ok {
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		h.Write(b)
	} else {
		b, _ := json.Marshal(o.Spec)
		h.Write(b)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// serviceSum hashes every field of a service.
func serviceSum(svc *registry.Service) [sha256.Size]byte {
	h := sha256.New()
	hashService(func(parts ...string) { writeParts(h, parts...) }, svc)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// Memo carries content hashes from one Build to the next: of each config
// object and each service, keyed by pointer (both are immutable once
// built), so that a Build after a small change hashes only what changed.
// Entries not used by a Build are dropped by the one after it. A nil Memo
// hashes everything. It is safe for concurrent use.
type Memo struct {
	mu   sync.Mutex
	objs sums[*config.Object]
	svcs sums[*registry.Service]
}

// NewMemo returns an empty Memo.
func NewMemo() *Memo {
	return &Memo{objs: newSums[*config.Object](), svcs: newSums[*registry.Service]()}
}

// rotate starts a Build: what the previous Build used is kept for this one.
func (m *Memo) rotate() {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objs.rotate()
	m.svcs.rotate()
}

func (m *Memo) object(o *config.Object) [sha256.Size]byte {
	if m == nil {
		return objectSum(o)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.objs.get(o, objectSum)
}

func (m *Memo) service(svc *registry.Service) [sha256.Size]byte {
	if m == nil {
		return serviceSum(svc)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.svcs.get(svc, serviceSum)
}

// sums holds the hashes of the current Build and of the previous one.
type sums[K comparable] struct{ cur, prev map[K][sha256.Size]byte }

func newSums[K comparable]() sums[K] {
	return sums[K]{cur: map[K][sha256.Size]byte{}}
}

// get returns k's hash, from either Build or else computed by sum, and
// keeps it for the next Build.
func (s *sums[K]) get(k K, sum func(K) [sha256.Size]byte) [sha256.Size]byte {
	v, ok := s.cur[k]
	if !ok {
		if v, ok = s.prev[k]; !ok {
			v = sum(k)
		}
		s.cur[k] = v
	}
	return v
}

func (s *sums[K]) rotate() {
	s.prev, s.cur = s.cur, make(map[K][sha256.Size]byte, len(s.cur))
}

// hashService feeds every field of svc to write (maps in key order).
func hashService(write func(...string), svc *registry.Service) {
	num := func(n uint64) string { return strconv.FormatUint(n, 10) }
	write("svc", svc.Hostname, svc.Namespace, svc.Name, svc.Resolution.String(), strconv.FormatBool(svc.MeshExternal))
	write(svc.Addresses...)
	write("|")
	write(svc.ExportTo...)
	write("|")
	for _, p := range svc.Ports {
		write(p.Name, num(uint64(p.Number)), p.Protocol, num(uint64(p.TargetPort)))
	}
	for _, e := range svc.Endpoints {
		write("ep", e.Address, e.WorkloadName, e.Namespace, e.ServiceAccount, e.Locality, e.Network,
			num(uint64(e.Weight)), strconv.FormatBool(e.Healthy))
		for _, k := range slices.Sorted(maps.Keys(e.Ports)) {
			write(k, num(uint64(e.Ports[k])))
		}
		write("|")
		for _, k := range slices.Sorted(maps.Keys(e.Labels)) {
			write(k, e.Labels[k])
		}
		write("|")
	}
}

package xds

import (
	"crypto/sha256"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// Cache memoizes generator work across proxies and mesh versions, the way
// Istio's push context shares per-service results: the clusters and load
// assignments of a service (keyed by the immutable inputs they are built
// from: the *registry.Service, the DestinationRule specs and the proxy
// kind), and the wire form and hash of every resource (keyed by the
// resource's pointer; generated resources are never modified). Results of
// GenerateCached equal Generate's.
//
// Entries live two generations: Rotate starts a new one (the server calls it
// per mesh version) and drops what the previous generation did not use.
// A Cache is safe for concurrent use.
type Cache struct {
	mu       sync.Mutex
	clusters genMap[clusterKey, *serviceClusters]
	routes   genMap[routeKey, *routev3.Route]
	vhosts   genMap[vhostKey, *routev3.VirtualHost]
	encoded  genMap[proto.Message, encoded]
	parts    genMap[proto.Message, []byte]
	domainss genMap[domainsKey, []string]
	// outbound holds the shared outbound part per snapshot and scope (scope.go).
	outbound    genMap[outboundKey, outboundPart]
	vips        genMap[*model.Snapshot, map[string]netip.Addr]
	vipServices genMap[vipKey, *registry.Service]
	merged      genMap[mergeKey, merged]
	// scopes and inbound hold the last part per scope and per proxy, and
	// diffs the snapshot comparisons, for change-driven generation
	// (incremental.go).
	scopes  genMap[ScopeKey, *scopeState]
	inbound genMap[*model.Proxy, inboundState]
	diffs   genMap[diffKey, model.Changes]
	// endpointSets holds a service's load assignments built without its
	// clusters (gen.buildServiceEndpoints).
	endpointSets genMap[endpointsKey, []*endpointv3.ClusterLoadAssignment]
	stats        changeCounters
}

// NewCache returns an empty Cache.
func NewCache() *Cache {
	return &Cache{clusters: newGenMap[clusterKey, *serviceClusters](), routes: newGenMap[routeKey, *routev3.Route](),
		vhosts: newGenMap[vhostKey, *routev3.VirtualHost](), encoded: newGenMap[proto.Message, encoded](),
		parts: newGenMap[proto.Message, []byte](), domainss: newGenMap[domainsKey, []string](),
		outbound: newGenMap[outboundKey, outboundPart](), vips: newGenMap[*model.Snapshot, map[string]netip.Addr](),
		vipServices: newGenMap[vipKey, *registry.Service](), merged: newGenMap[mergeKey, merged](),
		scopes: newGenMap[ScopeKey, *scopeState](), inbound: newGenMap[*model.Proxy, inboundState](), diffs: newGenMap[diffKey, model.Changes](),
		endpointSets: newGenMap[endpointsKey, []*endpointv3.ClusterLoadAssignment]()}
}

// Rotate starts a new generation: entries not used since the previous
// Rotate are dropped.
func (c *Cache) Rotate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clusters.rotate()
	c.routes.rotate()
	c.vhosts.rotate()
	c.encoded.rotate()
	c.parts.rotate()
	c.domainss.rotate()
	c.outbound.rotate()
	c.vips.rotate()
	c.vipServices.rotate()
	c.merged.rotate()
	c.scopes.rotate()
	c.inbound.rotate()
	c.diffs.rotate()
	c.endpointSets.rotate()
}

// Len returns the number of cached service cluster sets and encoded resources.
func (c *Cache) Len() (clusters, encoded int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clusters.len(), c.encoded.len()
}

// genMap is a map whose entries survive one rotation unless used again.
type genMap[K comparable, V any] struct{ cur, prev map[K]V }

func newGenMap[K comparable, V any]() genMap[K, V] {
	return genMap[K, V]{cur: map[K]V{}, prev: map[K]V{}}
}

func (m *genMap[K, V]) get(k K) (V, bool) {
	if v, ok := m.cur[k]; ok {
		return v, true
	}
	v, ok := m.prev[k]
	if ok {
		m.cur[k] = v
	}
	return v, ok
}

// load returns m's entry for k, building and storing it on a miss. build
// runs without c.mu held: two callers may both build, and the last store wins.
func load[K comparable, V any](c *Cache, m *genMap[K, V], k K, build func() V) V {
	c.mu.Lock()
	v, ok := m.get(k)
	c.mu.Unlock()
	if ok {
		return v
	}
	v = build()
	c.mu.Lock()
	m.cur[k] = v
	c.mu.Unlock()
	return v
}

func (m *genMap[K, V]) rotate() {
	m.prev = m.cur
	m.cur = make(map[K]V, len(m.prev))
}

func (m *genMap[K, V]) len() int {
	n := len(m.cur)
	for k := range m.prev {
		if _, ok := m.cur[k]; !ok {
			n++
		}
	}
	return n
}

// clusterKey is everything buildServiceClusters reads: the service, whether
// the proxy is proxyless gRPC, the mTLS mode of the service's namespace
// (auto mTLS), whether the mesh has a CA and the specs of the merged
// DestinationRules. Whatever else a
// cluster generator comes to read must be added here
// (TestGenerateCachedAcrossConfig).
type clusterKey struct {
	svc  *registry.Service
	grpc bool
	// router: gateways take DestinationRule credentialNames, sidecars not.
	router bool
	mtls   model.MTLSMode
	noCA   bool
	rulesKey
}

// rulesKey identifies a merged DestinationRule by its specs, up to
// maxKeyRules of them (more are not cached).
type rulesKey struct {
	nDR   int
	rules [maxKeyRules]*networking.DestinationRule
}

const maxKeyRules = 3

// rulesKeyFor returns dr's key, or false when dr has too many rules to be
// a key (or none: a merged rule is never empty).
func rulesKeyFor(dr *model.MergedDestinationRule) (rulesKey, bool) {
	var k rulesKey
	if dr == nil {
		return k, true
	}
	if len(dr.Rules) > maxKeyRules || len(dr.Rules) == 0 {
		return k, false
	}
	k.nDR = len(dr.Rules)
	for i, r := range dr.Rules {
		k.rules[i] = r.Spec
	}
	return k, true
}

func clusterKeyFor(svc *registry.Service, dr *model.MergedDestinationRule, grpc, router bool, mtls model.MTLSMode, noCA bool) (clusterKey, bool) {
	rk, ok := rulesKeyFor(dr)
	return clusterKey{svc: svc, grpc: grpc, router: router, mtls: mtls, noCA: noCA, rulesKey: rk}, ok
}

// endpointsKey is what a service's load assignments read: the service and
// the merged DestinationRule's specs (for subsets).
type endpointsKey struct {
	svc *registry.Service
	rulesKey
}

// serviceClusters is what buildServiceClusters adds for one service.
type serviceClusters struct {
	clusters  []*clusterv3.Cluster
	endpoints []*endpointv3.ClusterLoadAssignment
}

func (c *Cache) serviceClusters(k clusterKey, build func() *serviceClusters) *serviceClusters {
	return load(c, &c.clusters, k, build)
}

// encoded is a resource's wire form and the hash of its bytes.
type encoded struct {
	any *anypb.Any
	sum [sha256.Size]byte
}

// encode returns r's deterministic wire form as an Any of typeURL, and its hash.
func (c *Cache) encode(r proto.Message, typeURL string) encoded {
	if c == nil {
		return encode(r, typeURL)
	}
	return load(c, &c.encoded, r, func() encoded {
		if rc, ok := r.(*routev3.RouteConfiguration); ok {
			b := c.encodeRouteConfiguration(rc)
			return encoded{any: &anypb.Any{TypeUrl: typeURL, Value: b}, sum: sha256.Sum256(b)}
		}
		return encode(r, typeURL)
	})
}

func encode(r proto.Message, typeURL string) encoded {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		panic("marshal " + typeURL + ": " + err.Error()) // only on programming errors
	}
	return encoded{any: &anypb.Any{TypeUrl: typeURL, Value: b}, sum: sha256.Sum256(b)}
}

// routeKey is what the default route of host:port reads: the merged
// DestinationRule's specs (for hash policies).
type routeKey struct {
	host string
	port uint32
	rulesKey
}

func routeKeyFor(host string, port uint32, dr *model.MergedDestinationRule) (routeKey, bool) {
	rk, ok := rulesKeyFor(dr)
	return routeKey{host: host, port: port, rulesKey: rk}, ok
}

func (c *Cache) route(k routeKey, build func() *routev3.Route) *routev3.Route {
	return load(c, &c.routes, k, build)
}

// domainsKey is what a service port's virtual host domains depend on.
type domainsKey struct {
	svc             *registry.Service
	port            uint32
	local, explicit bool // the proxy is in the service's namespace; explicit proxy form
	domain          string
}

// domains returns the cached domains for k (never to be modified).
func (c *Cache) domains(k domainsKey, build func() []string) []string {
	return load(c, &c.domainss, k, func() []string { return slices.Clip(build()) })
}

// vhostKey identifies a virtual host by name, domains and routes (domains
// and routes by identity: they come from the cache or are new).
type vhostKey struct {
	name    string
	domains *string
	nd      int
	first   *routev3.Route
	n       int
}

// virtualHost returns a virtual host with name, domains and routes: the
// same *VirtualHost as before when all three are the same, so that its
// encoding is reused (a nil c always builds a new one).
func (c *Cache) virtualHost(name string, domains []string, routes []*routev3.Route) *routev3.VirtualHost {
	if c == nil || len(routes) == 0 || len(domains) == 0 {
		return &routev3.VirtualHost{Name: name, Domains: domains, Routes: routes}
	}
	k := vhostKey{name: name, domains: &domains[0], nd: len(domains), first: routes[0], n: len(routes)}
	c.mu.Lock()
	vh, ok := c.vhosts.get(k)
	c.mu.Unlock()
	if ok && slices.Equal(vh.Routes, routes) && slices.Equal(vh.Domains, domains) {
		return vh
	}
	vh = &routev3.VirtualHost{Name: name, Domains: domains, Routes: routes}
	c.mu.Lock()
	c.vhosts.cur[k] = vh
	c.mu.Unlock()
	return vh
}

// encodeRouteConfiguration is the deterministic wire form of rc, spliced
// from the cached encodings of its virtual hosts: protobuf-go writes fields
// in number order, so the bytes are name (1), each virtual host (2), then
// the other fields, exactly as proto.Marshal gives them.
func (c *Cache) encodeRouteConfiguration(rc *routev3.RouteConfiguration) []byte {
	rest := &routev3.RouteConfiguration{}
	dst := rest.ProtoReflect()
	rc.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if n := fd.Number(); n != 1 && n != 2 {
			dst.Set(fd, v)
		}
		return true
	})
	dst.SetUnknown(rc.ProtoReflect().GetUnknown())
	tail, err := proto.MarshalOptions{Deterministic: true}.Marshal(rest)
	if err != nil {
		panic("marshal route configuration " + rc.GetName() + ": " + err.Error())
	}
	size := len(tail) + protowire.SizeTag(1) + protowire.SizeBytes(len(rc.GetName()))
	parts := make([][]byte, len(rc.GetVirtualHosts()))
	for i, vh := range rc.GetVirtualHosts() {
		parts[i] = c.part(vh)
		size += protowire.SizeTag(2) + protowire.SizeBytes(len(parts[i]))
	}
	b := make([]byte, 0, size)
	if rc.GetName() != "" {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, rc.GetName())
	}
	for _, p := range parts {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, p)
	}
	return append(b, tail...)
}

// part returns the cached deterministic encoding of a message that is part
// of a resource.
func (c *Cache) part(m proto.Message) []byte {
	return load(c, &c.parts, m, func() []byte {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			panic(fmt.Sprintf("marshal %T: %v", m, err))
		}
		return b
	})
}

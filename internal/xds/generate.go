package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// Resources is everything one proxy gets, each list sorted by resource name.
// With a Cache the lists may be shared with other proxies (a sidecar's
// outbound types are its scope's): they must not be modified.
type Resources struct {
	Listeners []types.Resource
	Routes    []types.Resource
	Clusters  []types.Resource
	Endpoints []types.Resource
	// Secrets are SDS secrets: a gateway's credentials (gateway_tls.go).
	Secrets []types.Resource
	// Versions holds, per type URL, a hash of that type's resources: equal
	// hashes mean equal content, so the server pushes a type only when it changes.
	Versions map[string]string
	// Wire holds, per type URL, each resource's deterministic wire form in
	// the order of its list above. The Anys are shared (with a Cache, across
	// proxies and versions) and must not be modified.
	Wire map[string][]*anypb.Any
}

// ByType returns the resources keyed by type URL, the shape
// go-control-plane's cache.NewSnapshot takes.
func (r Resources) ByType() map[string][]types.Resource {
	return map[string][]types.Resource{
		resourcev3.ListenerType: r.Listeners,
		resourcev3.RouteType:    r.Routes,
		resourcev3.ClusterType:  r.Clusters,
		resourcev3.EndpointType: r.Endpoints,
		resourcev3.SecretType:   r.Secrets,
	}
}

// Version combines the per-type versions into one string (for a
// go-control-plane snapshot version).
func (r Resources) Version() string {
	h := sha256.New()
	for _, t := range []string{resourcev3.ListenerType, resourcev3.RouteType, resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.SecretType} {
		h.Write([]byte(r.Versions[t]))
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Generate builds the xDS resources for proxy from snap. It is a pure
// function: the same inputs give equal output, and neither input is modified.
// Sidecars get inbound/outbound listeners, per-port route configurations and
// clusters; routers get the listeners and routes of the Gateways selecting
// them; proxyless gRPC clients (Generator "grpc") get api_listeners.
func Generate(snap *model.Snapshot, proxy *model.Proxy) Resources {
	return GenerateCached(snap, proxy, nil)
}

// GenerateCached is Generate reusing the work c holds from other proxies
// and earlier snapshots; its result equals Generate's. A nil c caches nothing.
func GenerateCached(snap *model.Snapshot, proxy *model.Proxy, c *Cache) Resources {
	r := generateCached(snap, proxy, c)
	if patches := snap.EnvoyFiltersFor(proxy); patches != nil && proxy.Generator != "grpc" {
		return applyEnvoyFilters(snap, proxy, patches, r) // envoyfilter.go
	}
	return r
}

func generateCached(snap *model.Snapshot, proxy *model.Proxy, c *Cache) Resources {
	g := newGen(snap, proxy)
	g.cache = c
	switch {
	case proxy.Generator == "grpc":
		g.buildGRPC()
	case proxy.Type == model.Router:
		g.buildRouter()
	case c != nil:
		return c.generateSidecar(snap, proxy) // scope.go: the outbound part shared per ScopeKey
	default:
		g.buildSidecar()
	}
	return g.resources()
}

// gen accumulates one proxy's resources.
type gen struct {
	snap  *model.Snapshot
	proxy *model.Proxy
	grpc  bool
	cache *Cache // nil: no memoization
	// mtlsByNS memoizes snap.NamespaceMTLSMode for the cache keys.
	mtlsByNS map[string]model.MTLSMode
	// inboundPorts memoizes the model's view of the inbound ports (inbound.go).
	inboundPorts map[uint32]inboundPort
	// tracing memoizes snap.Tracing for the proxy (tracing.go).
	tracing *model.TracingConfig
	// metrics is the proxy's Telemetry metrics, computed on first use (stats.go).
	metrics *model.MetricsConfig
	// accessLogs memoizes snap.AccessLogging for the proxy (accesslog.go).
	accessLogs *model.AccessLogConfig
	// outSvcs are the services buildSidecarOutbound generated for, and
	// tcpOwner (when not nil) records the host each outbound TCP listener
	// was built for (incremental.go).
	outSvcs  []*registry.Service
	tcpOwner map[string]string

	listeners map[string]*listenerv3.Listener
	routes    map[string]*routev3.RouteConfiguration
	clusters  map[string]*clusterv3.Cluster
	endpoints map[string]*endpointv3.ClusterLoadAssignment
	secrets   map[string]*tlsv3.Secret
}

func newGen(snap *model.Snapshot, proxy *model.Proxy) *gen {
	return &gen{snap: snap, proxy: proxy, grpc: proxy.Generator == "grpc",
		listeners: map[string]*listenerv3.Listener{}, routes: map[string]*routev3.RouteConfiguration{},
		clusters: map[string]*clusterv3.Cluster{}, endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
		secrets: map[string]*tlsv3.Secret{}}
}

func (g *gen) resources() Resources {
	r := Resources{
		Listeners: sortedValues(g.listeners),
		Routes:    sortedValues(g.routes),
		Clusters:  sortedValues(g.clusters),
		Endpoints: sortedValues(g.endpoints),
		Secrets:   sortedValues(g.secrets),
		Versions:  make(map[string]string, 5),
		Wire:      make(map[string][]*anypb.Any, 5),
	}
	for typ, rs := range map[string][]types.Resource{resourcev3.ListenerType: r.Listeners, resourcev3.RouteType: r.Routes,
		resourcev3.ClusterType: r.Clusters, resourcev3.EndpointType: r.Endpoints, resourcev3.SecretType: r.Secrets} {
		r.Wire[typ], r.Versions[typ] = g.encodeAll(typ, rs)
	}
	return r
}

// encodeAll returns the wire form of rs and their version: a hash of the
// resources' hashes, in order.
func (g *gen) encodeAll(typeURL string, rs []types.Resource) ([]*anypb.Any, string) {
	h := sha256.New()
	out := make([]*anypb.Any, len(rs))
	for i, r := range rs {
		e := g.cache.encode(r, typeURL)
		out[i] = e.any
		h.Write(e.sum[:])
	}
	return out, hex.EncodeToString(h.Sum(nil))[:16]
}

// namespaceMTLSMode is snap.NamespaceMTLSMode(ns), looked up once per namespace.
func (g *gen) namespaceMTLSMode(ns string) model.MTLSMode {
	m, ok := g.mtlsByNS[ns]
	if !ok {
		if g.mtlsByNS == nil {
			g.mtlsByNS = map[string]model.MTLSMode{}
		}
		m = g.snap.NamespaceMTLSMode(ns)
		g.mtlsByNS[ns] = m
	}
	return m
}

func sortedValues[M ~map[string]V, V types.Resource](m M) []types.Resource {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, strings.Compare)
	out := make([]types.Resource, 0, len(keys))
	for _, k := range keys {
		out = append(out, m[k])
	}
	return out
}

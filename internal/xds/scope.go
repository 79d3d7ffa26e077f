package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// ScopeKey is everything a sidecar's outbound part depends on: the
// clusters, load assignments, route configurations and outbound listeners
// (buildSidecarOutbound). Sidecars with equal keys get the same outbound
// resources, generated and encoded once per snapshot and shared by pointer
// (Cache.generateSidecar); only the inbound part (the workload's IP, ports
// and security policies) is generated per proxy. Whatever an outbound
// generator comes to read from the proxy must be added here
// (TestScopeKeyShares).
type ScopeKey struct {
	// Namespace decides exportTo visibility, Sidecar and DestinationRule
	// lookup, short host names and sourceNamespace matches.
	Namespace string
	// OutboundHTTP is the explicit HTTP proxy listener address, if any.
	OutboundHTTP string
	// Captured: INTERCEPTION_MODE REDIRECT (auto-allocated VIPs, virtualOutbound).
	Captured bool
	// Selectors says which label selectors that shape outbound config select
	// the proxy (model.Snapshot.SelectorMatches): the only way its labels count.
	Selectors string
}

// ScopeKeyFor returns the outbound scope key of a sidecar proxy (a
// proxy of type model.SidecarProxy without the grpc generator; routers and
// proxyless clients are generated whole).
func ScopeKeyFor(snap *model.Snapshot, p *model.Proxy) ScopeKey {
	return ScopeKey{
		Namespace:    p.Namespace,
		OutboundHTTP: p.OutboundHTTP,
		Captured:     p.InterceptionMode == model.InterceptionRedirect,
		Selectors:    snap.SelectorMatches(p),
	}
}

// scopeProxy is the proxy an outbound part is generated for: the key's
// fields and nothing else, so that a generator reading anything more finds
// it empty (and TestScopeKeyShares fails).
func scopeProxy(snap *model.Snapshot, k ScopeKey, p *model.Proxy) *model.Proxy {
	sp := &model.Proxy{ID: "scope", Type: model.SidecarProxy, Namespace: k.Namespace, OutboundHTTP: k.OutboundHTTP}
	if k.Captured {
		sp.InterceptionMode = model.InterceptionRedirect
	}
	// Labels are read only through the selectors: the proxy's own labels
	// select exactly as its key says.
	sp.Labels = p.Labels
	return sp
}

// outboundKey identifies an outbound part: one snapshot and scope.
type outboundKey struct {
	snap *model.Snapshot
	ScopeKey
}

// part is one type's resources of a generation, sorted by name, with their
// encodings, their wire form and the type's version as a whole (what a
// proxy gets when it adds nothing of its own to the type).
type part struct {
	names   []string
	res     []types.Resource
	enc     []encoded
	wire    []*anypb.Any
	version string
}

// outboundPart is the shared outbound part of one scope, per type URL.
type outboundPart map[string]*part

// generateSidecar generates a sidecar: the outbound part from the cache
// (once per snapshot and scope), the inbound part per proxy (each updated
// from the last one where the change allows, incremental.go), merged by
// name. The result equals Generate's.
func (c *Cache) generateSidecar(snap *model.Snapshot, proxy *model.Proxy) Resources {
	out := c.outboundPart(snap, ScopeKeyFor(snap, proxy), proxy) // incremental.go
	return c.merge(out, c.inboundPart(snap, proxy))
}

// mergeKey identifies a merged CDS: the shared part and the digest of the
// proxy's own clusters (names and bytes).
type mergeKey struct {
	shared *part
	own    [sha256.Size]byte
}

// merged is one type of a merge's result.
type merged struct {
	res     []types.Resource
	wire    []*anypb.Any
	version string
}

// parts sorts and encodes what g built, through c (nil: encode afresh).
func (g *gen) parts(c *Cache) outboundPart {
	p := outboundPart{}
	for typ, rs := range map[string][]types.Resource{resourcev3.ListenerType: sortedValues(g.listeners), resourcev3.RouteType: sortedValues(g.routes),
		resourcev3.ClusterType: sortedValues(g.clusters), resourcev3.EndpointType: sortedValues(g.endpoints)} {
		pt := &part{names: make([]string, len(rs)), res: rs, enc: make([]encoded, len(rs)), wire: make([]*anypb.Any, len(rs))}
		h := sha256.New()
		for i, r := range rs {
			pt.names[i] = resourceName(r)
			pt.enc[i] = c.encode(r, typ)
			pt.wire[i] = pt.enc[i].any
			h.Write(pt.enc[i].sum[:])
		}
		pt.version = hex.EncodeToString(h.Sum(nil))[:16]
		p[typ] = pt
	}
	return p
}

// merge combines the shared and the per-proxy parts into one proxy's
// Resources; on a name in both, shared wins (buildSidecar adds the
// outbound part last).
func (c *Cache) merge(shared, own outboundPart) Resources {
	r := Resources{Versions: make(map[string]string, 5), Wire: make(map[string][]*anypb.Any, 5)}
	// Sidecars have no SDS secrets of their own (gateway credentials only).
	r.setType(resourcev3.SecretType, nil, nil, noSecretsVersion)
	for _, typ := range []string{resourcev3.ListenerType, resourcev3.RouteType, resourcev3.ClusterType, resourcev3.EndpointType} {
		a, b := shared[typ], own[typ]
		if len(b.names) == 0 { // nothing of the proxy's own: the shared slices as they are
			r.setType(typ, a.res, a.wire, a.version)
			continue
		}
		if typ != resourcev3.ClusterType { // listeners are the workload's own (its IP): merged per proxy
			m := mergeTwo(a, b)
			r.setType(typ, m.res, m.wire, m.version)
			continue
		}
		// Inbound clusters depend on the ports only: sidecars of a scope
		// with the same ports share the merged CDS.
		h := sha256.New()
		for i, n := range b.names {
			h.Write([]byte(n))
			h.Write(b.enc[i].sum[:])
		}
		k := mergeKey{shared: a}
		h.Sum(k.own[:0])
		m := load(c, &c.merged, k, func() merged { return mergeTwo(a, b) })
		r.setType(typ, m.res, m.wire, m.version)
	}
	return r
}

// mergeTwo merges two sorted parts by name; on a name in both, a wins.
func mergeTwo(a, b *part) merged {
	n := len(a.names) + len(b.names)
	res, wire := make([]types.Resource, 0, n), make([]*anypb.Any, 0, n)
	h := sha256.New()
	add := func(p *part, i int) {
		res = append(res, p.res[i])
		wire = append(wire, p.enc[i].any)
		h.Write(p.enc[i].sum[:])
	}
	i, j := 0, 0
	for i < len(a.names) || j < len(b.names) {
		switch {
		case j == len(b.names) || (i < len(a.names) && a.names[i] < b.names[j]):
			add(a, i)
			i++
		case i == len(a.names) || b.names[j] < a.names[i]:
			add(b, j)
			j++
		default: // the same name: shared wins
			add(a, i)
			i++
			j++
		}
	}
	return merged{res: res, wire: wire, version: hex.EncodeToString(h.Sum(nil))[:16]}
}

func (r *Resources) setType(typ string, res []types.Resource, wire []*anypb.Any, version string) {
	r.Wire[typ], r.Versions[typ] = wire, version
	switch typ {
	case resourcev3.ListenerType:
		r.Listeners = res
	case resourcev3.RouteType:
		r.Routes = res
	case resourcev3.ClusterType:
		r.Clusters = res
	case resourcev3.EndpointType:
		r.Endpoints = res
	case resourcev3.SecretType:
		r.Secrets = res
	}
}

// noSecretsVersion is the version encodeAll gives an empty list.
var noSecretsVersion = func() string {
	sum := sha256.Sum256(nil)
	return hex.EncodeToString(sum[:])[:16]
}()

// resourceName is the name a resource is keyed by in xDS.
func resourceName(r types.Resource) string {
	type clusterNamed interface{ GetClusterName() string }
	if n, ok := r.(clusterNamed); ok {
		return n.GetClusterName()
	}
	type named interface{ GetName() string }
	return r.(named).GetName()
}

// autoVIPServices returns svcs with auto-allocated VIPs (withAutoVIPs),
// reusing the copies of earlier generations: the same *registry.Service
// with the same VIP gives the same copy, so the per-service caches keyed by
// the service hit for captured proxies too.
func (c *Cache) autoVIPServices(snap *model.Snapshot, svcs []*registry.Service) []*registry.Service {
	vips := load(c, &c.vips, snap, func() map[string]netip.Addr { return model.AutoVIPs(snap.Services()) })
	out := make([]*registry.Service, len(svcs))
	for i, s := range svcs {
		out[i] = s
		if vip, ok := vips[s.Hostname]; ok && len(s.Addresses) == 0 {
			out[i] = load(c, &c.vipServices, vipKey{svc: s, vip: vip}, func() *registry.Service {
				cp := *s
				cp.Addresses = []string{vip.String()}
				return &cp
			})
		}
	}
	return out
}

// vipKey is a service and the VIP allocated to it.
type vipKey struct {
	svc *registry.Service
	vip netip.Addr
}

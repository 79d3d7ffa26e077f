package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"sync/atomic"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// Change-driven generation (Istio's ConfigsUpdated): a new snapshot is
// compared with the one a scope's outbound part, or a proxy's inbound part,
// was last generated from (model.Diff), and only what the change touches is
// generated again:
//
//   - endpoints of a service changed: that service's clusters and load
//     assignments, in the scopes that hold it (CDS only if its bytes
//     changed: DNS clusters carry endpoints, SANs name their service
//     accounts); listeners and routes are kept; a proxy's inbound part
//     only when the service has an endpoint at the proxy's IP;
//   - a VirtualService with exact hosts added, changed or removed: the
//     virtual hosts of those hosts in the route configurations of the
//     scopes that see them, and the TCP listeners built for them; clusters,
//     load assignments and every inbound part are kept;
//   - a DestinationRule with an exact host: that host's clusters and load
//     assignments (subsets come and go), its virtual hosts and those of the
//     hosts routing to it (hash policies);
//   - a security policy (AuthorizationPolicy, RequestAuthentication,
//     PeerAuthentication with a selector) added, changed or removed: the
//     inbound parts of the sidecars either version selects; every scope's
//     outbound part is kept (LDS of the selected workloads only);
//   - anything else: everything, from the per-service caches.
//
// The result equals a full generation (TestChangeDrivenEqualsRegeneration,
// and the server's TestIncrementalPushesEqualRegeneration).

// scopeState is the last outbound part generated for a scope, with what
// updating it for a later snapshot needs.
type scopeState struct {
	snap *model.Snapshot
	part outboundPart
	// svcs are the services the part was generated from, by hostname (the
	// snapshot's values, before auto-VIP copies; a value may be an older one
	// of equal content, model.Diff reports no change for those).
	svcs map[string]*registry.Service
	// tcpOwner names, per outbound TCP listener, the host it was built for
	// (the first service wins a shared name).
	tcpOwner map[string]string
}

// inboundState is the last inbound part generated for a proxy.
type inboundState struct {
	snap *model.Snapshot
	part outboundPart
}

// ChangeStats counts how a Cache produced scope and inbound parts: built
// in full, or carried over from the last snapshot and updated where the
// change touched them.
type ChangeStats struct {
	ScopesBuilt, ScopesUpdated int64
	InboundBuilt, InboundKept  int64
}

type changeCounters struct {
	scopesBuilt, scopesUpdated, inboundBuilt, inboundKept atomic.Int64
}

// ChangeStats returns the counts since c was made.
func (c *Cache) ChangeStats() ChangeStats {
	return ChangeStats{ScopesBuilt: c.stats.scopesBuilt.Load(), ScopesUpdated: c.stats.scopesUpdated.Load(),
		InboundBuilt: c.stats.inboundBuilt.Load(), InboundKept: c.stats.inboundKept.Load()}
}

// diffKey identifies a comparison of two snapshots.
type diffKey struct{ prev, next *model.Snapshot }

// diff is model.Diff(prev, next), computed once per pair.
func (c *Cache) diff(prev, next *model.Snapshot) model.Changes {
	return load(c, &c.diffs, diffKey{prev, next}, func() model.Changes { return model.Diff(prev, next) })
}

// outboundPart returns scope k's outbound part for snap: from the snapshot's
// memo, else updated from the scope's last part, else built.
func (c *Cache) outboundPart(snap *model.Snapshot, k ScopeKey, proxy *model.Proxy) outboundPart {
	return load(c, &c.outbound, outboundKey{snap: snap, ScopeKey: k}, func() outboundPart {
		c.mu.Lock()
		st, ok := c.scopes.get(k)
		c.mu.Unlock()
		var next *scopeState
		if ok && st.snap != snap {
			next = c.updateScope(st, snap, k, proxy)
		}
		if next == nil {
			next = c.buildScope(snap, k, proxy)
			c.stats.scopesBuilt.Add(1)
		} else {
			c.stats.scopesUpdated.Add(1)
		}
		c.mu.Lock()
		c.scopes.cur[k] = next
		c.mu.Unlock()
		return next.part
	})
}

// buildScope generates scope k's outbound part for snap in full.
func (c *Cache) buildScope(snap *model.Snapshot, k ScopeKey, proxy *model.Proxy) *scopeState {
	g := newGen(snap, scopeProxy(snap, k, proxy))
	g.cache = c
	g.tcpOwner = map[string]string{}
	g.buildSidecarOutbound()
	st := &scopeState{snap: snap, part: g.parts(c), svcs: make(map[string]*registry.Service, len(g.outSvcs)), tcpOwner: g.tcpOwner}
	for _, s := range g.outSvcs {
		st.svcs[s.Hostname] = s
	}
	return st
}

// updateScope returns st updated to snap, or nil when the change is not
// one it can apply (then the part is built anew).
func (c *Cache) updateScope(st *scopeState, snap *model.Snapshot, k ScopeKey, proxy *model.Proxy) *scopeState {
	ch := c.diff(st.snap, snap)
	if ch.All {
		return nil
	}
	g := newGen(snap, scopeProxy(snap, k, proxy))
	g.cache = c
	next := &scopeState{snap: snap, part: st.part, svcs: st.svcs, tcpOwner: st.tcpOwner}
	repl := map[string]map[string]types.Resource{}
	put := func(typ, name string, r types.Resource) {
		if repl[typ] == nil {
			repl[typ] = map[string]types.Resource{}
		}
		repl[typ][name] = r
	}
	drop := map[string]map[string]bool{} // names gone, by type
	del := func(typ, name string) {
		if drop[typ] == nil {
			drop[typ] = map[string]bool{}
		}
		drop[typ][name] = true
	}
	copied := false
	for old, svc := range ch.Endpoints {
		if cur := st.svcs[old.Hostname]; cur == nil || cur.Namespace != old.Namespace || cur.Name != old.Name {
			continue // not in this scope (or another namespace's service of that name)
		}
		if !copied {
			next.svcs, copied = maps.Clone(st.svcs), true
		}
		next.svcs[svc.Hostname] = svc
		sub := newGen(snap, g.proxy)
		sub.cache = c
		if endpointsOnly(old, svc) {
			sub.buildServiceEndpoints(svc)
		} else {
			sub.buildServiceClusters(g.withAutoVIPs([]*registry.Service{svc})[0])
		}
		for name, cl := range sub.clusters {
			put(resourcev3.ClusterType, name, cl)
		}
		for name, e := range sub.endpoints {
			put(resourcev3.EndpointType, name, e)
		}
	}
	// A DestinationRule changed: its host's clusters and load assignments
	// anew, and those its previous version gave that are gone (subsets).
	for _, host := range slices.Sorted(maps.Keys(ch.ClusterHosts)) {
		svc, old := next.svcs[host], st.svcs[host]
		if svc == nil {
			continue
		}
		was := newGen(st.snap, scopeProxy(st.snap, k, proxy))
		was.cache = c
		was.buildServiceClusters(was.withAutoVIPs([]*registry.Service{old})[0])
		sub := newGen(snap, g.proxy)
		sub.cache = c
		sub.buildServiceClusters(g.withAutoVIPs([]*registry.Service{svc})[0])
		for name, cl := range sub.clusters {
			put(resourcev3.ClusterType, name, cl)
		}
		for name, e := range sub.endpoints {
			put(resourcev3.EndpointType, name, e)
		}
		for name := range was.clusters {
			if _, ok := sub.clusters[name]; !ok {
				del(resourcev3.ClusterType, name)
			}
		}
		for name := range was.endpoints {
			if _, ok := sub.endpoints[name]; !ok {
				del(resourcev3.EndpointType, name)
			}
		}
	}
	if len(ch.RouteHosts) > 0 {
		vss := snap.VirtualServicesFor(g.proxy, model.MeshGateway)
		routes := map[string]*routev3.RouteConfiguration{}
		for _, host := range slices.Sorted(maps.Keys(ch.RouteHosts)) {
			svc := next.svcs[host]
			if svc == nil {
				continue // no service of that host in this scope
			}
			svc = g.withAutoVIPs([]*registry.Service{svc})[0]
			for _, port := range svc.Ports {
				if !port.IsHTTP() {
					name := outboundTCPName(svc, port)
					if st.tcpOwner[name] == host {
						sub := newGen(snap, g.proxy)
						sub.cache = c
						sub.addOutboundTCP(svc, port, vss)
						put(resourcev3.ListenerType, name, sub.listeners[name])
					}
					continue
				}
				rs := g.serviceRoutes(svc, port, vss)
				vh := svc.Hostname + ":" + portName(port.Number)
				if !c.patchRoute(st.part, routes, portName(port.Number), vh, rs) {
					return nil
				}
				if g.proxy.OutboundHTTP != "" && !c.patchRoute(st.part, routes, ExplicitProxyRoute, vh, rs) {
					return nil
				}
			}
		}
		for name, rc := range routes {
			put(resourcev3.RouteType, name, rc)
		}
	}
	if len(repl) == 0 && len(drop) == 0 {
		return next
	}
	next.part = maps.Clone(st.part)
	for _, typ := range []string{resourcev3.ListenerType, resourcev3.RouteType, resourcev3.ClusterType, resourcev3.EndpointType} {
		if len(repl[typ]) == 0 && len(drop[typ]) == 0 {
			continue
		}
		p, ok := c.patchPart(st.part[typ], typ, repl[typ], drop[typ])
		if !ok {
			return nil
		}
		next.part[typ] = p
	}
	return next
}

// patchRoute replaces, in the route configuration named rcName (a copy in
// routes, made from prev's on first use), the virtual host named vh with
// one holding rs. A virtual host that is not there (all its domains were
// taken by earlier ones) is left out as before. It reports false when prev
// has no such route configuration.
func (c *Cache) patchRoute(prev outboundPart, routes map[string]*routev3.RouteConfiguration, rcName, vh string, rs []*routev3.Route) bool {
	rc := routes[rcName]
	if rc == nil {
		pt := prev[resourcev3.RouteType]
		i, ok := slices.BinarySearch(pt.names, rcName)
		if !ok {
			return false
		}
		old := pt.res[i].(*routev3.RouteConfiguration)
		rc = &routev3.RouteConfiguration{}
		dst := rc.ProtoReflect()
		old.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if fd.Number() != 2 { // virtual_hosts: copied below
				dst.Set(fd, v)
			}
			return true
		})
		rc.VirtualHosts = slices.Clone(old.VirtualHosts)
		routes[rcName] = rc
	}
	for i, v := range rc.VirtualHosts {
		if v.GetName() == vh {
			rc.VirtualHosts[i] = c.virtualHost(vh, v.GetDomains(), rs)
			break
		}
	}
	return true
}

// patchPart returns prev with the resources of repl (by name) in place of
// its own or added, and those named in drop removed; prev itself when
// every replacement encodes to the same bytes and nothing is added or
// removed. It reports false when prev is missing.
func (c *Cache) patchPart(prev *part, typ string, repl map[string]types.Resource, drop map[string]bool) (*part, bool) {
	if prev == nil {
		return nil, false
	}
	var np *part
	grow := len(drop) > 0
	for name, r := range repl {
		i, ok := slices.BinarySearch(prev.names, name)
		if !ok {
			grow = true // added: merged below
			continue
		}
		e := c.encode(r, typ)
		if e.sum == prev.enc[i].sum {
			continue // the same bytes: keep the old value, and the part if nothing else changes
		}
		if np == nil {
			np = &part{names: prev.names, res: slices.Clone(prev.res), enc: slices.Clone(prev.enc), wire: slices.Clone(prev.wire)}
		}
		np.res[i], np.enc[i], np.wire[i] = r, e, e.any
	}
	if grow {
		if np == nil {
			np = prev
		}
		np = c.reshape(np, typ, repl, drop)
	}
	if np == nil {
		return prev, true
	}
	h := sha256.New()
	for _, e := range np.enc {
		h.Write(e.sum[:])
	}
	np.version = hex.EncodeToString(h.Sum(nil))[:16]
	return np, true
}

// reshape returns p with the resources of repl it lacks added and those in
// drop removed, in name order (its version is set by the caller).
func (c *Cache) reshape(p *part, typ string, repl map[string]types.Resource, drop map[string]bool) *part {
	var added []string
	for name := range repl {
		if _, ok := slices.BinarySearch(p.names, name); !ok {
			added = append(added, name)
		}
	}
	slices.Sort(added)
	n := len(p.names) + len(added)
	out := &part{names: make([]string, 0, n), res: make([]types.Resource, 0, n), enc: make([]encoded, 0, n), wire: make([]*anypb.Any, 0, n)}
	add := func(name string, r types.Resource, e encoded) {
		out.names = append(out.names, name)
		out.res = append(out.res, r)
		out.enc = append(out.enc, e)
		out.wire = append(out.wire, e.any)
	}
	i, j := 0, 0
	for i < len(p.names) || j < len(added) {
		if j == len(added) || (i < len(p.names) && p.names[i] < added[j]) {
			if !drop[p.names[i]] {
				add(p.names[i], p.res[i], p.enc[i])
			}
			i++
			continue
		}
		name := added[j]
		add(name, repl[name], c.encode(repl[name], typ))
		j++
	}
	return out
}

// inboundPart returns the proxy's inbound part for snap: its last one when
// the change since does not touch it, else generated anew.
func (c *Cache) inboundPart(snap *model.Snapshot, proxy *model.Proxy) outboundPart {
	c.mu.Lock()
	st, ok := c.inbound.get(proxy)
	c.mu.Unlock()
	if ok && st.snap == snap {
		return st.part
	}
	if !ok || !inboundUnchanged(c.diff(st.snap, snap), proxy) {
		in := newGen(snap, proxy) // no cache: nothing per proxy is kept but its part
		in.buildSidecarInbound()
		st.part = in.parts(nil)
		c.stats.inboundBuilt.Add(1)
	} else {
		c.stats.inboundKept.Add(1)
	}
	st.snap = snap
	c.mu.Lock()
	c.inbound.cur[proxy] = st
	c.mu.Unlock()
	return st.part
}

// inboundUnchanged reports whether a proxy's inbound part is the same after
// ch: inbound listeners and clusters read no VirtualService, of the
// services only those with an endpoint at the proxy's IPs (their metadata),
// and of the security policies those that select the proxy.
func inboundUnchanged(ch model.Changes, proxy *model.Proxy) bool {
	if ch.All {
		return false
	}
	for _, ip := range proxy.IPs {
		if ch.Addresses[ip] {
			return false
		}
	}
	for _, a := range ch.Policies {
		if a.Selects(proxy) {
			return false
		}
	}
	return true
}

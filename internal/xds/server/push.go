package server

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/bowline-mesh/bowline/internal/model"
)

// generated is one proxy's resources with a content hash per type, ready
// to serve: the same *generated goes to every node with the same proxy key.
type generated struct {
	versions map[string]string // type URL -> content hash
	snap     *wireSnapshot
}

// node is the push state of one connected node id.
type node struct {
	proxy    *model.Proxy
	key      string // proxyKey(proxy), computed once
	streams  int
	versions map[string]string // per type, last set in the cache
	snap     *wireSnapshot     // last set in the cache
	setAt    time.Time         // when the last snapshot was set
}

// pusher generates per distinct proxy and sets changed snapshots in the
// cache. It is safe for concurrent use; pushes are serialized.
type pusher struct {
	cache   *wireCache
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time

	mu   sync.Mutex
	mesh Mesh
	// configVersion is the config store version mesh was built from.
	configVersion uint64
	nodes         map[string]*node
	// memo holds what mesh generated, by proxy key: proxies that differ
	// only in ID share one generation, within a push and on connect.
	memo map[string]*generated
	// types interns each type's encoded resources by content: nodes whose
	// resources of a type are equal (sidecars of one scope: clusters, load
	// assignments, routes) hold one *wireType. It keeps what connected
	// nodes hold (pruned after every push).
	types map[typeKey]*wireType
}

// typeKey identifies a type's content.
type typeKey struct{ url, version string }

func newPusher(c *wireCache, log *slog.Logger, m *metrics, now func() time.Time) *pusher {
	return &pusher{cache: c, log: log, metrics: m, now: now, nodes: map[string]*node{}, memo: map[string]*generated{},
		types: map[typeKey]*wireType{}}
}

// connect adds a stream of p and, if a mesh is built, sets its snapshot so
// the stream's first requests are answered.
func (p *pusher) connect(proxy *model.Proxy) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, ok := p.nodes[proxy.ID]
	if !ok {
		n = &node{}
		p.nodes[proxy.ID] = n
	}
	n.streams++
	n.proxy, n.key = proxy, proxyKey(proxy)
	if p.mesh == nil {
		return
	}
	if g, ok := p.generateMemo(p.mesh, n); ok {
		p.set(context.Background(), proxy.ID, n, g)
	}
}

// disconnect removes a stream of the proxy; the node's snapshot goes with its last stream.
func (p *pusher) disconnect(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, ok := p.nodes[id]
	if !ok {
		return
	}
	n.streams--
	if n.streams <= 0 {
		delete(p.nodes, id)
		p.cache.clear(id)
		p.pruneTypes()
	}
}

// lastSet returns when the node's last snapshot was set.
func (p *pusher) lastSet(id string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n, ok := p.nodes[id]; ok {
		return n.setAt
	}
	return time.Time{}
}

// pushResult counts what a push did.
type pushResult struct {
	proxies int // connected proxies
	changed int // proxies whose resources changed
}

// push makes mesh, built from config store version configVersion,
// current and sets a new snapshot for every connected proxy whose generated
// resources differ from what it has.
func (p *pusher) push(ctx context.Context, mesh Mesh, configVersion uint64) pushResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mesh, p.configVersion = mesh, configVersion
	clear(p.memo)
	ids := make([]string, 0, len(p.nodes))
	for id := range p.nodes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	res := pushResult{proxies: len(ids)}
	for _, id := range ids {
		n := p.nodes[id]
		g, ok := p.generateMemo(mesh, n)
		if !ok {
			continue
		}
		if p.set(ctx, id, n, g) {
			res.changed++
		}
	}
	p.pruneTypes()
	return res
}

// unchanged records that the mesh built from configVersion is the one in
// force (its resources are the same), so every node has that version.
func (p *pusher) unchanged(configVersion uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.configVersion = configVersion
	for id := range p.nodes {
		p.cache.advance(id, configVersion)
	}
}

// distribution returns, per connected node id, the newest config store
// version it has taken in whole, as the cache recorded it when the node
// answered (wireCache.taken).
func (p *pusher) distribution() map[string]uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]uint64, len(p.nodes))
	for id := range p.nodes {
		out[id] = p.cache.taken(id)
	}
	return out
}

// pruneTypes drops interned types no node holds. The caller holds p.mu.
func (p *pusher) pruneTypes() {
	held := make(map[*wireType]bool, len(p.types))
	for _, n := range p.nodes {
		if n.snap != nil {
			for _, t := range n.snap.types {
				held[t] = true
			}
		}
	}
	maps.DeleteFunc(p.types, func(_ typeKey, t *wireType) bool { return !held[t] })
}

// generateMemo returns the node's generation from the memo, generating it
// on a miss. The caller holds p.mu.
func (p *pusher) generateMemo(mesh Mesh, n *node) (*generated, bool) {
	if g, ok := p.memo[n.key]; ok {
		return g, true
	}
	g, ok := p.generate(mesh, n.proxy)
	if ok {
		p.memo[n.key] = g
	}
	return g, ok
}

// set puts g, generated from the mesh of p.configVersion, in the cache
// for the node unless every type's version is unchanged (then the node's
// snapshot stands for p.configVersion too). It reports whether it did.
// The caller holds p.mu.
func (p *pusher) set(ctx context.Context, id string, n *node, g *generated) bool {
	if n.versions != nil && equalVersions(n.versions, g.versions) {
		p.cache.advance(id, p.configVersion)
		return false
	}
	if err := p.cache.set(ctx, id, g.snap, p.configVersion); err != nil {
		p.log.Info("set snapshot failed", slog.String(attrProxy, id), slog.String(attrError, err.Error()))
		return false
	}
	n.versions, n.snap = g.versions, g.snap
	n.setAt = p.now()
	return true
}

// generate runs the generator for one proxy. A panicking generator is
// logged and the proxy keeps what it has.
func (p *pusher) generate(mesh Mesh, proxy *model.Proxy) (g *generated, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Info("generator failed, proxy keeps its last config", slog.String(attrProxy, proxy.ID), slog.String(attrError, fmt.Sprint(r)))
			p.metrics.generateErrors.Inc()
			g, ok = nil, false
		}
	}()
	res := mesh.Generate(proxy)
	versions := make(map[string]string, len(res.ByType))
	ws := &wireSnapshot{types: make(map[string]*wireType, len(res.ByType))}
	for url, items := range res.ByType {
		if cachev3.GetResponseType(url) == types.UnknownType {
			continue
		}
		w, ok := res.Wire[url]
		if !ok || len(w) != len(items) {
			w = encodeAll(url, items)
		}
		v, ok := res.Versions[url]
		if !ok {
			v = contentHash(items, w)
		}
		versions[url] = v
		k := typeKey{url: url, version: v}
		t, ok := p.types[k]
		if !ok {
			t = newWireType(items, w, v)
			p.types[k] = t
		}
		ws.types[url] = t
	}
	return &generated{versions: versions, snap: ws}, true
}

// encodeAll marshals items deterministically into Anys of typeURL.
func encodeAll(typeURL string, items []types.Resource) []*anypb.Any {
	out := make([]*anypb.Any, len(items))
	opts := proto.MarshalOptions{Deterministic: true}
	for i, r := range items {
		b, err := opts.Marshal(r)
		if err != nil {
			panic(fmt.Sprintf("marshal %s: %v", cachev3.GetResourceName(r), err))
		}
		out[i] = &anypb.Any{TypeUrl: typeURL, Value: b}
	}
	return out
}

func equalVersions(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// contentHash hashes resources in name order, so equal content gives an
// equal version whatever order the generator used. wire is their
// deterministic encoding, in the order of items.
func contentHash(items []types.Resource, wire []*anypb.Any) string {
	names := make([]string, len(items))
	order := make([]int, len(items))
	for i, r := range items {
		names[i], order[i] = cachev3.GetResourceName(r), i
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(names[a], names[b]) })
	h := fnv.New64a()
	for _, i := range order {
		h.Write([]byte(names[i]))
		h.Write([]byte{0})
		h.Write(wire[i].GetValue())
	}
	return hex.EncodeToString(h.Sum(nil))
}

// proxyKey identifies what generation depends on: every field but the ID.
func proxyKey(p *model.Proxy) string {
	c := *p
	c.ID = ""
	b, err := json.Marshal(c)
	if err != nil {
		return p.ID // cannot happen for these field types; never share then
	}
	return string(b)
}

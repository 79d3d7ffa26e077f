package server

import (
	"context"
	"slices"
	"sync"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// wireCache is the cache the ADS server serves from. State-of-the-world
// watches are answered here from per-node snapshots of already encoded
// resources: a resource is marshalled once, when generated, and the same
// bytes go to every stream and every node that has it (go-control-plane's
// SnapshotCache marshals every resource again for every response).
// Delta watches and fetches go to the embedded SnapshotCache, which is given
// the same content. Responses are sent under the SotW rules of
// go-control-plane's SnapshotCache (non-ADS mode): a watch is answered when
// its type's version differs from the request's, or when the request
// names a resource the stream has not been sent.
//
// It is safe for concurrent use.
type wireCache struct {
	cachev3.SnapshotCache // delta watches, fetches

	mu    sync.Mutex
	nodes map[string]*wireNode
}

var _ cachev3.Cache = (*wireCache)(nil)

func newWireCache() *wireCache {
	return &wireCache{SnapshotCache: cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil), nodes: map[string]*wireNode{}}
}

// wireNode is one node id's snapshot and open SotW watches.
type wireNode struct {
	snap    *wireSnapshot // nil until set
	watches map[*sotwWatch]struct{}
}

type sotwWatch struct {
	req *discovery.DiscoveryRequest
	sub cachev3.Subscription
	out chan cachev3.Response
}

// wireSnapshot is one generation's resources, shared by the nodes that got
// the same generation. It is immutable.
type wireSnapshot struct {
	types map[string]*wireType
	delta *cachev3.Snapshot // the same resources for the delta cache
}

// wireType is one type's resources of a wireSnapshot.
type wireType struct {
	version string
	names   []string // resource names, in the order of all
	all     []*anypb.Any
	index   map[string]int
	// returned maps every name to version: the state a full response
	// leaves the stream in (shared: go-control-plane never modifies it).
	returned map[string]string
}

// newWireSnapshot builds a snapshot from per-type resources, their wire
// form (same order) and versions.
func newWireSnapshot(res map[string][]types.Resource, wire map[string][]*anypb.Any, versions map[string]string) *wireSnapshot {
	ws := &wireSnapshot{types: make(map[string]*wireType, len(res))}
	delta := &cachev3.Snapshot{}
	for url, items := range res {
		idx := cachev3.GetResponseType(url)
		if idx == types.UnknownType {
			continue
		}
		t := &wireType{version: versions[url], names: make([]string, len(items)), all: wire[url],
			index: make(map[string]int, len(items)), returned: make(map[string]string, len(items))}
		for i, r := range items {
			name := cachev3.GetResourceName(r)
			t.names[i] = name
			t.index[name] = i
			t.returned[name] = t.version
		}
		ws.types[url] = t
		delta.Resources[idx] = cachev3.NewResources(t.version, items)
	}
	ws.delta = delta
	return ws
}

// set makes ws the node's snapshot and answers its watches whose version
// is now stale.
func (c *wireCache) set(ctx context.Context, node string, ws *wireSnapshot) error {
	c.mu.Lock()
	n := c.node(node)
	n.snap = ws
	for w := range n.watches {
		t := ws.types[w.req.GetTypeUrl()]
		if t == nil || t.version == w.req.GetVersionInfo() {
			continue
		}
		delete(n.watches, w)
		w.out <- response(w.req, t)
	}
	c.mu.Unlock()
	return c.SnapshotCache.SetSnapshot(ctx, node, ws.delta)
}

// clear forgets a node.
func (c *wireCache) clear(node string) {
	c.mu.Lock()
	delete(c.nodes, node)
	c.mu.Unlock()
	c.SnapshotCache.ClearSnapshot(node)
}

func (c *wireCache) node(id string) *wireNode {
	n, ok := c.nodes[id]
	if !ok {
		n = &wireNode{watches: map[*sotwWatch]struct{}{}}
		c.nodes[id] = n
	}
	return n
}

// CreateWatch answers req from the node's snapshot if the client lacks
// something, else parks the watch until a snapshot with another version.
// The channel has room for one response per type (the SotW server's), so
// sending under the lock does not block.
func (c *wireCache) CreateWatch(req *discovery.DiscoveryRequest, sub cachev3.Subscription, out chan cachev3.Response) (func(), error) {
	id := req.GetNode().GetId()
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.node(id)
	var t *wireType
	if n.snap != nil {
		t = n.snap.types[req.GetTypeUrl()]
	}
	if t != nil && (req.GetVersionInfo() != t.version || lacksResources(sub, t)) {
		out <- response(req, t)
		return func() {}, nil
	}
	w := &sotwWatch{req: req, sub: sub, out: out}
	n.watches[w] = struct{}{}
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if n, ok := c.nodes[id]; ok {
			delete(n.watches, w)
		}
	}, nil
}

// lacksResources reports whether the stream has not been sent a resource
// of t it subscribes to (every one, for a wildcard subscription).
func lacksResources(sub cachev3.Subscription, t *wireType) bool {
	known := sub.ReturnedResources()
	if sub.IsWildcard() {
		for _, name := range t.names {
			if _, ok := known[name]; !ok {
				return true
			}
		}
		return false
	}
	for name := range sub.SubscribedResources() {
		if _, ok := known[name]; !ok {
			if _, ok := t.index[name]; ok {
				return true
			}
		}
	}
	return false
}

// response is t as a response to req: every resource, or those req names.
// Each response is a new message (the server sets its nonce) holding the
// shared encoded resources.
func response(req *discovery.DiscoveryRequest, t *wireType) cachev3.Response {
	resources, returned := t.all, t.returned
	if names := req.GetResourceNames(); len(names) != 0 && !coversAll(names, t) {
		resources = make([]*anypb.Any, 0, len(names))
		returned = make(map[string]string, len(names))
		for _, name := range names {
			if i, ok := t.index[name]; ok {
				if _, dup := returned[name]; !dup {
					resources = append(resources, t.all[i])
					returned[name] = t.version
				}
			}
		}
	}
	return &cachev3.PassthroughResponse{
		Request:           req,
		DiscoveryResponse: &discovery.DiscoveryResponse{VersionInfo: t.version, TypeUrl: req.GetTypeUrl(), Resources: slices.Clip(resources)},
		ReturnedResources: returned,
	}
}

// coversAll reports whether names holds exactly t's resources (in t's order,
// as a client that asks for what CDS/LDS named does).
func coversAll(names []string, t *wireType) bool {
	return slices.Equal(names, t.names)
}

package server

import (
	"context"
	"encoding/hex"
	"errors"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"sync"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// wireCache is the cache the ADS server serves from, state of the world and
// delta alike. Each node holds one wireSnapshot: per type, a reference to
// a wireType of already encoded resources. A wireType is shared by every
// node whose resources of that type are the same (the pusher interns them
// by content version), so a resource is marshalled once, when generated,
// and the same bytes go to every stream of every node that has it; a
// connected node costs its references, not a copy.
//
// State-of-the-world watches are answered under the rules of
// go-control-plane's SnapshotCache (non-ADS mode): when the type's version
// differs from the request's, or when the request names a resource the
// stream has not been sent. Delta watches get the resources whose version
// differs from what the stream has, and the names it has that are gone
// (go-control-plane's delta semantics, including the first wildcard
// response even when empty).
//
// It is safe for concurrent use.
type wireCache struct {
	mu    sync.Mutex
	nodes map[string]*wireNode
}

var _ cachev3.Cache = (*wireCache)(nil)

func newWireCache() *wireCache { return &wireCache{nodes: map[string]*wireNode{}} }

// wireNode is one node id's snapshot and open watches.
type wireNode struct {
	snap         *wireSnapshot // nil until set
	watches      map[*sotwWatch]struct{}
	deltaWatches map[*deltaWatch]struct{}
	// subs follows the node's subscription to each type URL through its
	// snapshots (taken.go); gen counts the snapshots set, cv is the config
	// version the current one stands for, taken the newest config version
	// the node has taken in whole.
	subs           map[string]*subState
	gen, cv, taken uint64
}

type sotwWatch struct {
	req *discovery.DiscoveryRequest
	sub cachev3.Subscription
	out chan cachev3.Response
}

type deltaWatch struct {
	req *discovery.DeltaDiscoveryRequest
	sub cachev3.Subscription
	out chan cachev3.DeltaResponse
}

// wireSnapshot is one node's resources: a reference per type URL. It is
// immutable.
type wireSnapshot struct {
	types map[string]*wireType
}

// wireType is one type's resources, shared by the nodes that have the same
// content. It is immutable.
type wireType struct {
	version string
	names   []string // resource names, in the order of all
	all     []*anypb.Any
	index   map[string]int
	// versions holds each resource's own version (a hash of its bytes),
	// what delta streams compare.
	versions []string
	// returned maps every name to version: the state a full response
	// leaves a wildcard stream in. It is shared; go-control-plane modifies
	// a subscription's returned map only for subscriptions by name, which
	// get their own copy (response).
	returned map[string]string
}

// newWireType builds a type from resources, their wire form (same order)
// and the type's version.
func newWireType(items []types.Resource, wire []*anypb.Any, version string) *wireType {
	t := &wireType{version: version, names: make([]string, len(items)), all: wire,
		index: make(map[string]int, len(items)), versions: make([]string, len(items)), returned: make(map[string]string, len(items))}
	for i, r := range items {
		name := cachev3.GetResourceName(r)
		t.names[i] = name
		t.index[name] = i
		t.returned[name] = version
		h := fnv.New64a()
		h.Write(wire[i].GetValue())
		t.versions[i] = hex.EncodeToString(h.Sum(nil))
	}
	return t
}

// set makes ws, generated from config store version configVersion, the
// node's snapshot and answers its watches that are now behind.
func (c *wireCache) set(_ context.Context, node string, ws *wireSnapshot, configVersion uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.node(node)
	n.newSnapshot(ws, configVersion)
	for w := range n.watches {
		key := w.req.GetTypeUrl()
		t := ws.types[w.req.GetTypeUrl()]
		if t == nil || t.version == w.req.GetVersionInfo() {
			n.current(key)
			continue
		}
		if r := response(w.req, w.sub, t); r != nil {
			delete(n.watches, w)
			n.sent(key)
			w.out <- r
		} else {
			n.current(key)
		}
	}
	for w := range n.deltaWatches {
		key := w.req.GetTypeUrl()
		if r := deltaResponse(w.req, w.sub, ws.types[w.req.GetTypeUrl()]); r != nil {
			delete(n.deltaWatches, w)
			n.sent(key)
			w.out <- r
		} else {
			n.current(key)
		}
	}
	n.progress()
	return nil
}

// advance records that the node's snapshot also stands for the newer
// config version configVersion (a push that changed nothing for it).
func (c *wireCache) advance(node string, configVersion uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.nodes[node]; ok && n.snap != nil {
		n.cv = max(n.cv, configVersion)
		n.progress()
	}
}

// taken returns the newest config store version the node has taken in
// whole (0: none): every stream subscription has answered a response of
// a snapshot of that version or newer, or was sent nothing by one, and
// none rejected the last response it answered.
func (c *wireCache) taken(node string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.nodes[node]; ok {
		return n.taken
	}
	return 0
}

// clear forgets a node.
func (c *wireCache) clear(node string) {
	c.mu.Lock()
	delete(c.nodes, node)
	c.mu.Unlock()
}

func (c *wireCache) node(id string) *wireNode {
	n, ok := c.nodes[id]
	if !ok {
		n = &wireNode{watches: map[*sotwWatch]struct{}{}, deltaWatches: map[*deltaWatch]struct{}{}, subs: map[string]*subState{}}
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
	key := req.GetTypeUrl()
	n.answered(key, req.GetResponseNonce() != "", req.GetErrorDetail() != nil)
	defer n.progress()
	var t *wireType
	if n.snap != nil {
		t = n.snap.types[req.GetTypeUrl()]
	}
	if t != nil && (req.GetVersionInfo() != t.version || lacksResources(sub, t)) {
		if r := response(req, sub, t); r != nil {
			n.sent(key)
			out <- r
			return func() {}, nil // the stream's next request of the type, or its end, follows
		}
	}
	n.current(key)
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

// CreateDeltaWatch answers req with what the stream lacks or has that is
// gone, else parks the watch until a snapshot changes that. The delta
// server's channel has room for two responses per type.
func (c *wireCache) CreateDeltaWatch(req *discovery.DeltaDiscoveryRequest, sub cachev3.Subscription, out chan cachev3.DeltaResponse) (func(), error) {
	id := req.GetNode().GetId()
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.node(id)
	key := req.GetTypeUrl()
	n.answered(key, req.GetResponseNonce() != "", req.GetErrorDetail() != nil)
	defer n.progress()
	if n.snap != nil {
		if r := deltaResponse(req, sub, n.snap.types[req.GetTypeUrl()]); r != nil {
			n.sent(key)
			out <- r
			return func() {}, nil // the stream's next request of the type, or its end, follows
		}
	}
	n.current(key)
	w := &deltaWatch{req: req, sub: sub, out: out}
	n.deltaWatches[w] = struct{}{}
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if n, ok := c.nodes[id]; ok {
			delete(n.deltaWatches, w)
		}
	}, nil
}

// errNoFetch: the REST fetch API is not served; ADS streams are.
var errNoFetch = errors.New("xds fetch (REST) is not served: use an ADS stream")

// Fetch is not served.
func (c *wireCache) Fetch(context.Context, *discovery.DiscoveryRequest) (cachev3.Response, error) {
	return nil, errNoFetch
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

// response is t as a response to req. Each response is a new message (the
// server sets its nonce) holding the shared encoded resources.
//
// Listeners and clusters, and wildcard subscriptions, get every resource
// (or those req names). Other types subscribed by name (EDS, RDS) get only
// the resources whose own version differs from what the stream was sent,
// as the xDS protocol allows for them and Istio's incremental EDS does: an
// endpoint change sends the load assignments that changed, not all of
// them. A stream's returned map then holds each resource's own version;
// response is nil when none of its resources changed.
func response(req *discovery.DiscoveryRequest, sub cachev3.Subscription, t *wireType) cachev3.Response {
	if names := req.GetResourceNames(); len(names) > 0 && !sub.IsWildcard() && partialType(req.GetTypeUrl()) {
		return partialResponse(req, sub, t, names)
	}
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
	} else if !sub.IsWildcard() || partialType(req.GetTypeUrl()) {
		// A subscription by name deletes the names it drops from its
		// returned map later, and partialResponse updates it in place: it
		// must not be the shared one. (A wildcard subscription of a partial
		// type may later name its resources.)
		returned = maps.Clone(returned)
	}
	return &cachev3.PassthroughResponse{
		Request:           req,
		DiscoveryResponse: &discovery.DiscoveryResponse{VersionInfo: t.version, TypeUrl: req.GetTypeUrl(), Resources: slices.Clip(resources)},
		ReturnedResources: returned,
	}
}

// partialType reports whether a state-of-the-world response of typeURL may
// hold only some of the subscribed resources: every type but listeners and
// clusters, whose responses are their complete state.
func partialType(typeURL string) bool {
	return typeURL != resourcev3.ListenerType && typeURL != resourcev3.ClusterType
}

// partialResponse is response for a type subscribed by name that may be sent
// in part: the named resources the stream lacks or has in another version.
//
// The stream's returned map is updated in place and handed back: it is the
// subscription's own (by-name subscriptions never share one, see response),
// the stream's goroutine touches it only after closing the watch this
// response answers, and the response always reaches the stream. Copying it
// per response was, with the lookups, most of a push's per-stream cost at
// hundreds of streams subscribing to a thousand load assignments.
func partialResponse(req *discovery.DiscoveryRequest, sub cachev3.Subscription, t *wireType, names []string) cachev3.Response {
	known := sub.ReturnedResources()
	covers := coversAll(names, t)
	if req.GetVersionInfo() != "" && !changedFor(names, covers, known, t) {
		return nil // the stream has all of it; a first request is answered even when empty
	}
	if known == nil {
		known = make(map[string]string, len(names))
	}
	var resources []*anypb.Any
	if covers {
		// names are t's names, in order (distinct): no index lookups.
		for i, name := range names {
			if v := t.versions[i]; known[name] != v {
				known[name] = v
				resources = append(resources, t.all[i])
			}
		}
	} else {
		for _, name := range names { // a name listed twice is sent once: known has it then
			i, ok := t.index[name]
			if !ok {
				delete(known, name)
				continue
			}
			if v := t.versions[i]; known[name] != v {
				known[name] = v
				resources = append(resources, t.all[i])
			}
		}
	}
	return &cachev3.PassthroughResponse{
		Request:           req,
		DiscoveryResponse: &discovery.DiscoveryResponse{VersionInfo: t.version, TypeUrl: req.GetTypeUrl(), Resources: resources},
		ReturnedResources: known,
	}
}

// changedFor reports whether a resource of t that names lists differs from
// the version known for it (without allocating: most pushes change nothing
// a given stream subscribes to). covers says names are t's names in order.
func changedFor(names []string, covers bool, known map[string]string, t *wireType) bool {
	if covers {
		for i, name := range names {
			if known[name] != t.versions[i] {
				return true
			}
		}
		return false
	}
	for _, name := range names {
		if i, ok := t.index[name]; ok && known[name] != t.versions[i] {
			return true
		}
	}
	return false
}

// coversAll reports whether names holds exactly t's resources (in t's order,
// as a client that asks for what CDS/LDS named does).
func coversAll(names []string, t *wireType) bool {
	return slices.Equal(names, t.names)
}

// deltaResponse is what a delta stream subscribed as sub is to be sent of
// t (nil: the type is empty for the node): the resources it lacks or has
// in another version, and the names it has that are gone. It is nil when
// there is nothing to send, except for the first wildcard request, which
// is always answered (Envoy waits for it to finish initialising).
func deltaResponse(req *discovery.DeltaDiscoveryRequest, sub cachev3.Subscription, t *wireType) cachev3.DeltaResponse {
	if t == nil {
		t = emptyWireType
	}
	known := sub.ReturnedResources()
	var resources []*discovery.Resource
	var removed []string
	var next map[string]string
	if sub.IsWildcard() {
		next = make(map[string]string, len(t.names))
		for i, name := range t.names {
			v := t.versions[i]
			next[name] = v
			if prev, ok := known[name]; !ok || prev != v {
				resources = append(resources, &discovery.Resource{Name: name, Version: v, Resource: t.all[i]})
			}
		}
		for name := range known {
			if _, ok := t.index[name]; !ok {
				removed = append(removed, name)
			}
		}
	} else {
		next = make(map[string]string, len(sub.SubscribedResources()))
		for name := range sub.SubscribedResources() {
			prev, had := known[name]
			if i, ok := t.index[name]; ok {
				v := t.versions[i]
				if !had || prev != v {
					resources = append(resources, &discovery.Resource{Name: name, Version: v, Resource: t.all[i]})
				}
				next[name] = v
			} else if had {
				removed = append(removed, name)
			}
		}
		slices.SortFunc(resources, func(a, b *discovery.Resource) int { return strings.Compare(a.GetName(), b.GetName()) })
	}
	if len(resources) == 0 && len(removed) == 0 && (!sub.IsWildcard() || req.GetResponseNonce() != "") {
		return nil
	}
	slices.Sort(removed)
	return &cachev3.DeltaPassthroughResponse{
		DeltaRequest:   req,
		NextVersionMap: next,
		DeltaDiscoveryResponse: &discovery.DeltaDiscoveryResponse{SystemVersionInfo: t.version, TypeUrl: req.GetTypeUrl(),
			Resources: resources, RemovedResources: removed},
	}
}

// emptyWireType stands for a type the node has no resources of.
var emptyWireType = &wireType{index: map[string]int{}, returned: map[string]string{}}

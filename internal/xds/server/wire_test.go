package server

import (
	"context"
	"maps"
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func wireSnap(t *testing.T, version string, names ...string) *wireSnapshot {
	t.Helper()
	var cs, es []types.Resource
	for _, n := range names {
		cs = append(cs, &clusterv3.Cluster{Name: n})
		es = append(es, &endpointv3.ClusterLoadAssignment{ClusterName: n})
	}
	ws := &wireSnapshot{types: map[string]*wireType{}}
	for typ, items := range map[string][]types.Resource{resourcev3.ClusterType: cs, resourcev3.EndpointType: es} {
		ws.types[typ] = newWireType(items, encodeAll(typ, items), version)
	}
	return ws
}

func TestWireCacheWatches(t *testing.T) {
	c := newWireCache()
	node := &core.Node{Id: "n1"}
	watch := func(req *discovery.DiscoveryRequest, sub stream.Subscription) chan cachev3.Response {
		t.Helper()
		ch := make(chan cachev3.Response, 1)
		if _, err := c.CreateWatch(req, sub, ch); err != nil {
			t.Fatal(err)
		}
		return ch
	}
	got := func(ch chan cachev3.Response) *discovery.DiscoveryResponse {
		t.Helper()
		select {
		case r := <-ch:
			out, err := r.GetDiscoveryResponse()
			if err != nil {
				t.Fatal(err)
			}
			return out
		default:
			return nil
		}
	}

	// A watch before any snapshot waits, and is answered by the first one.
	cds := &discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType}
	ch := watch(cds, stream.NewSotwSubscription(nil, true))
	if got(ch) != nil {
		t.Fatal("answered without a snapshot")
	}
	if err := c.set(context.Background(), "n1", wireSnap(t, "v1", "a", "b"), 0); err != nil {
		t.Fatal(err)
	}
	if r := got(ch); r == nil || r.VersionInfo != "v1" || len(r.Resources) != 2 {
		t.Fatalf("first snapshot: %v", r)
	}

	// EDS by name: only the names asked for; the same version with a new
	// name is answered, with nothing new it waits.
	sub := stream.NewSotwSubscription([]string{"b"}, false)
	eds := &discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.EndpointType, ResourceNames: []string{"b"}}
	r := got(watch(eds, sub))
	if r == nil || len(r.Resources) != 1 {
		t.Fatalf("eds by name: %v", r)
	}
	// The response updated the stream's returned map in place (b at its
	// own version), as the server would set it on sending.
	acked := &discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.EndpointType, VersionInfo: "v1", ResourceNames: []string{"b"}}
	parked := watch(acked, sub)
	if got(parked) != nil {
		t.Fatal("same version and names answered again")
	}
	// Another stream of the node that has b and now asks for a too gets a only.
	sub2 := stream.NewSotwSubscription([]string{"b"}, false)
	sub2.SetReturnedResources(maps.Clone(sub.ReturnedResources()))
	sub2.SetResourceSubscription([]string{"a", "b"})
	more := &discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.EndpointType, VersionInfo: "v1", ResourceNames: []string{"a", "b"}}
	if r := got(watch(more, sub2)); r == nil || len(r.Resources) != 1 {
		t.Fatalf("new name: %v", r)
	}

	// A new version answers parked watches whose resources changed; an
	// unchanged version does not, nor one whose change they do not hold.
	if err := c.set(context.Background(), "n1", wireSnap(t, "v1", "a", "b"), 0); err != nil {
		t.Fatal(err)
	}
	if got(parked) != nil {
		t.Fatal("answered for an unchanged version")
	}
	if err := c.set(context.Background(), "n1", wireSnap(t, "v2", "a", "b", "c"), 0); err != nil {
		t.Fatal(err)
	}
	if got(parked) != nil {
		t.Fatal("answered for a version where b did not change")
	}
	v3 := wireSnap(t, "v3", "a", "b", "c")
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: "b", Endpoints: []*endpointv3.LocalityLbEndpoints{{LoadBalancingWeight: wrapperspb.UInt32(3)}}}
	es := []types.Resource{&endpointv3.ClusterLoadAssignment{ClusterName: "a"}, cla, &endpointv3.ClusterLoadAssignment{ClusterName: "c"}}
	v3.types[resourcev3.EndpointType] = newWireType(es, encodeAll(resourcev3.EndpointType, es), "v3")
	if err := c.set(context.Background(), "n1", v3, 0); err != nil {
		t.Fatal(err)
	}
	if r := got(parked); r == nil || r.VersionInfo != "v3" || len(r.Resources) != 1 {
		t.Fatalf("parked watch after b changed: %v", r)
	}
	c.clear("n1")
	if _, ok := c.nodes["n1"]; ok {
		t.Fatal("node not cleared")
	}
}

// wireSnapWith is wireSnap with the cluster "b" changed (another
// connect timeout) when changeB is set.
func wireSnapWith(t *testing.T, version string, changeB bool, names ...string) *wireSnapshot {
	t.Helper()
	ws := wireSnap(t, version, names...)
	if changeB {
		var cs []types.Resource
		for _, n := range names {
			c := &clusterv3.Cluster{Name: n}
			if n == "b" {
				c.AltStatName = "changed"
			}
			cs = append(cs, c)
		}
		ws.types[resourcev3.ClusterType] = newWireType(cs, encodeAll(resourcev3.ClusterType, cs), version)
	}
	return ws
}

// TestWireCacheDelta pins the delta semantics: the first wildcard request
// gets everything (even nothing), later responses carry only changed and
// removed resources, and a subscription by name sees only its names.
func TestWireCacheDelta(t *testing.T) {
	c := newWireCache()
	node := &core.Node{Id: "d1"}
	watch := func(req *discovery.DeltaDiscoveryRequest, sub *stream.Subscription) chan cachev3.DeltaResponse {
		t.Helper()
		ch := make(chan cachev3.DeltaResponse, 2)
		if _, err := c.CreateDeltaWatch(req, sub, ch); err != nil {
			t.Fatal(err)
		}
		return ch
	}
	// got takes the response, applies it to sub as the delta server does,
	// and returns the names sent and removed.
	got := func(ch chan cachev3.DeltaResponse, sub *stream.Subscription) (sent, removed []string, ok bool) {
		t.Helper()
		select {
		case r := <-ch:
			out, err := r.GetDeltaDiscoveryResponse()
			if err != nil {
				t.Fatal(err)
			}
			for _, res := range out.GetResources() {
				sent = append(sent, res.GetName())
			}
			sub.SetReturnedResources(r.GetNextVersionMap())
			return sent, out.GetRemovedResources(), true
		default:
			return nil, nil, false
		}
	}

	// Before any snapshot the wildcard watch waits; the first snapshot
	// answers it with everything.
	cds := stream.NewDeltaSubscription(nil, nil, nil, true)
	ch := watch(&discovery.DeltaDiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType}, &cds)
	if _, _, ok := got(ch, &cds); ok {
		t.Fatal("answered without a snapshot")
	}
	if err := c.set(context.Background(), "d1", wireSnap(t, "v1", "a", "b"), 0); err != nil {
		t.Fatal(err)
	}
	if sent, _, ok := got(ch, &cds); !ok || !slices.Equal(sent, []string{"a", "b"}) {
		t.Fatalf("first response sent %v (%v), want a, b", sent, ok)
	}
	// The ACK parks: nothing changed.
	ch = watch(&discovery.DeltaDiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType, ResponseNonce: "1"}, &cds)
	if _, _, ok := got(ch, &cds); ok {
		t.Fatal("ACK answered with nothing new")
	}
	// An unchanged snapshot under a new version sends nothing; b changing,
	// a going and c coming send b and c and remove a.
	if err := c.set(context.Background(), "d1", wireSnap(t, "v2", "a", "b"), 0); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := got(ch, &cds); ok {
		t.Fatal("answered for unchanged resources")
	}
	if err := c.set(context.Background(), "d1", wireSnapWith(t, "v3", true, "b", "c"), 0); err != nil {
		t.Fatal(err)
	}
	sent, removed, ok := got(ch, &cds)
	if !ok || !slices.Equal(sent, []string{"b", "c"}) || !slices.Equal(removed, []string{"a"}) {
		t.Fatalf("after the change sent %v removed %v (%v), want [b c] and [a]", sent, removed, ok)
	}

	// By name: only the subscribed names, and a first request for names
	// that do not exist waits.
	eds := stream.NewDeltaSubscription([]string{"c", "zz"}, nil, nil, true)
	sent, _, ok = got(watch(&discovery.DeltaDiscoveryRequest{Node: node, TypeUrl: resourcev3.EndpointType, ResourceNamesSubscribe: []string{"c", "zz"}}, &eds), &eds)
	if !ok || !slices.Equal(sent, []string{"c"}) {
		t.Fatalf("by name sent %v (%v), want [c]", sent, ok)
	}
	none := stream.NewDeltaSubscription([]string{"zz"}, nil, nil, true)
	if _, _, ok := got(watch(&discovery.DeltaDiscoveryRequest{Node: node, TypeUrl: resourcev3.EndpointType, ResourceNamesSubscribe: []string{"zz"}}, &none), &none); ok {
		t.Fatal("answered a subscription to names that do not exist")
	}
}

// TestWireCachePartialEDS: a state-of-the-world EDS subscription by name
// gets only the load assignments that changed; a new version with nothing
// changed for it sends nothing.
func TestWireCachePartialEDS(t *testing.T) {
	c := newWireCache()
	node := &core.Node{Id: "p1"}
	edsSnap := func(version string, weights map[string]uint32) *wireSnapshot {
		var es []types.Resource
		for _, n := range []string{"a", "b", "c"} {
			es = append(es, &endpointv3.ClusterLoadAssignment{ClusterName: n,
				Endpoints: []*endpointv3.LocalityLbEndpoints{{LoadBalancingWeight: wrapperspb.UInt32(weights[n])}}})
		}
		return &wireSnapshot{types: map[string]*wireType{resourcev3.EndpointType: newWireType(es, encodeAll(resourcev3.EndpointType, es), version)}}
	}
	sub := stream.NewSotwSubscription([]string{"a", "b"}, false)
	recv := func(req *discovery.DiscoveryRequest) []string {
		t.Helper()
		ch := make(chan cachev3.Response, 1)
		if _, err := c.CreateWatch(req, &sub, ch); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-ch:
			sub.SetReturnedResources(r.GetReturnedResources())
			out, _ := r.GetDiscoveryResponse()
			var names []string
			for _, a := range out.GetResources() {
				names = append(names, clusterLoadAssignmentName(t, a.GetValue()))
			}
			return names
		default:
			return nil
		}
	}
	if err := c.set(context.Background(), "p1", edsSnap("v1", map[string]uint32{"a": 1, "b": 1, "c": 1}), 0); err != nil {
		t.Fatal(err)
	}
	req := &discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.EndpointType, ResourceNames: []string{"a", "b"}}
	if got := recv(req); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("first response %v, want a, b", got)
	}
	acked := &discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.EndpointType, VersionInfo: "v1", ResourceNames: []string{"a", "b"}}
	ch := make(chan cachev3.Response, 1)
	if _, err := c.CreateWatch(acked, &sub, ch); err != nil {
		t.Fatal(err)
	}
	// c (not subscribed) changes: nothing for this stream.
	if err := c.set(context.Background(), "p1", edsSnap("v2", map[string]uint32{"a": 1, "b": 1, "c": 2}), 0); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-ch:
		out, _ := r.GetDiscoveryResponse()
		t.Fatalf("answered with %d resources for a change it does not subscribe to", len(out.GetResources()))
	default:
	}
	// b changes: only b.
	if err := c.set(context.Background(), "p1", edsSnap("v3", map[string]uint32{"a": 1, "b": 5, "c": 2}), 0); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-ch:
		out, _ := r.GetDiscoveryResponse()
		if len(out.GetResources()) != 1 || clusterLoadAssignmentName(t, out.GetResources()[0].GetValue()) != "b" || out.GetVersionInfo() != "v3" {
			t.Fatalf("after b changed: %v", out)
		}
	default:
		t.Fatal("not answered after a subscribed assignment changed")
	}
}

func clusterLoadAssignmentName(t *testing.T, b []byte) string {
	t.Helper()
	var cla endpointv3.ClusterLoadAssignment
	if err := proto.Unmarshal(b, &cla); err != nil {
		t.Fatal(err)
	}
	return cla.GetClusterName()
}

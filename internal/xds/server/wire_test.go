package server

import (
	"context"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

func wireSnap(t *testing.T, version string, names ...string) *wireSnapshot {
	t.Helper()
	var cs, es []types.Resource
	for _, n := range names {
		cs = append(cs, &clusterv3.Cluster{Name: n})
		es = append(es, &endpointv3.ClusterLoadAssignment{ClusterName: n})
	}
	res := map[string][]types.Resource{resourcev3.ClusterType: cs, resourcev3.EndpointType: es}
	wire := map[string][]*anypb.Any{}
	for typ, items := range res {
		wire[typ] = encodeAll(typ, items)
	}
	return newWireSnapshot(res, wire, map[string]string{resourcev3.ClusterType: version, resourcev3.EndpointType: version})
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
	if err := c.set(context.Background(), "n1", wireSnap(t, "v1", "a", "b")); err != nil {
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
	sub.SetReturnedResources(map[string]string{"b": "v1"})
	acked := &discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.EndpointType, VersionInfo: "v1", ResourceNames: []string{"b"}}
	parked := watch(acked, sub)
	if got(parked) != nil {
		t.Fatal("same version and names answered again")
	}
	sub.SetResourceSubscription([]string{"a", "b"})
	more := &discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.EndpointType, VersionInfo: "v1", ResourceNames: []string{"a", "b"}}
	if r := got(watch(more, sub)); r == nil || len(r.Resources) != 2 {
		t.Fatalf("new name: %v", r)
	}

	// A new version answers parked watches; an unchanged version does not.
	if err := c.set(context.Background(), "n1", wireSnap(t, "v1", "a", "b")); err != nil {
		t.Fatal(err)
	}
	if got(parked) != nil {
		t.Fatal("answered for an unchanged version")
	}
	if err := c.set(context.Background(), "n1", wireSnap(t, "v2", "a", "b", "c")); err != nil {
		t.Fatal(err)
	}
	if r := got(parked); r == nil || r.VersionInfo != "v2" || len(r.Resources) != 1 {
		t.Fatalf("parked watch after v2: %v", r)
	}
	c.clear("n1")
	if _, ok := c.nodes["n1"]; ok {
		t.Fatal("node not cleared")
	}
}

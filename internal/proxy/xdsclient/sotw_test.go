package xdsclient

import (
	"fmt"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/anypb"
)

// sotwStep is one response of the control plane and what the client must
// answer to it.
type sotwStep = step[*discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]

func sotwResp(typ, version, nonce string, res ...*anypb.Any) *discoveryv3.DiscoveryResponse {
	return &discoveryv3.DiscoveryResponse{TypeUrl: typ, VersionInfo: version, Nonce: nonce, Resources: res}
}

func nackDetail(msg string) *statuspb.Status {
	return &statuspb.Status{Code: int32(codes.InvalidArgument), Message: msg}
}

// sotwBootstrap is the exchange that brings a state-of-the-world client from
// nothing to a complete state: listener l1 (route r1), cluster c1 (EDS c1),
// route r1, endpoints c1 on port 9001.
var sotwBootstrap = []sotwStep{
	{
		name: "listener referencing route r1 is acked and r1 requested",
		resp: func(t *testing.T) *discoveryv3.DiscoveryResponse {
			return sotwResp(ListenerType, "l-1", "n1", anyOf(t, listener(t, "l1", 15001, "r1")))
		},
		want: []*discoveryv3.DiscoveryRequest{
			{TypeUrl: ListenerType, VersionInfo: "l-1", ResponseNonce: "n1"},
			{TypeUrl: RouteType, ResourceNames: []string{"r1"}},
		},
	},
	{
		name: "eds cluster c1 is acked and its endpoints requested",
		resp: func(t *testing.T) *discoveryv3.DiscoveryResponse {
			return sotwResp(ClusterType, "c-1", "n2", anyOf(t, edsCluster("c1")))
		},
		want: []*discoveryv3.DiscoveryRequest{
			{TypeUrl: ClusterType, VersionInfo: "c-1", ResponseNonce: "n2"},
			{TypeUrl: EndpointType, ResourceNames: []string{"c1"}},
		},
	},
	{
		name: "route r1 is acked with its names",
		resp: func(t *testing.T) *discoveryv3.DiscoveryResponse {
			return sotwResp(RouteType, "r-1", "n3", anyOf(t, routeConfig("r1", "c1")))
		},
		want: []*discoveryv3.DiscoveryRequest{
			{TypeUrl: RouteType, VersionInfo: "r-1", ResponseNonce: "n3", ResourceNames: []string{"r1"}},
		},
	},
	{
		name: "endpoints c1 are acked and the state is complete",
		resp: func(t *testing.T) *discoveryv3.DiscoveryResponse {
			return sotwResp(EndpointType, "e-1", "n4", anyOf(t, cla("c1", 9001)))
		},
		want: []*discoveryv3.DiscoveryRequest{
			{TypeUrl: EndpointType, VersionInfo: "e-1", ResponseNonce: "n4", ResourceNames: []string{"c1"}},
		},
		check: checkComplete(9001),
	},
}

// TestSotW drives a state-of-the-world stream response by response and checks
// every request the client sends: wildcard LDS and CDS first, RDS and EDS by
// the names the accepted listeners and clusters reference, an ACK carrying
// each accepted response's version and nonce, and a NACK carrying the last
// accepted version, the rejected response's nonce and the rejection's text.
func TestSotW(t *testing.T) {
	steps := append(sotwBootstrap[:len(sotwBootstrap):len(sotwBootstrap)], []sotwStep{
		{
			name: "clusters the consumer rejects are nacked with the previous version",
			resp: func(t *testing.T) *discoveryv3.DiscoveryResponse {
				return sotwResp(ClusterType, "c-2", "n5", anyOf(t, edsCluster("c1")), anyOf(t, edsCluster(rejectCluster)))
			},
			want: []*discoveryv3.DiscoveryRequest{
				{TypeUrl: ClusterType, VersionInfo: "c-1", ResponseNonce: "n5",
					ErrorDetail: nackDetail("cluster rejected: the proxy cannot serve it")},
			},
			check: func(t *testing.T, c *Client) {
				if _, ok := c.State().Clusters()[rejectCluster]; ok {
					t.Error("the rejected cluster is in the client's state")
				}
				if _, nacks, last := c.Stats(); nacks != 1 || last != "cluster rejected: the proxy cannot serve it" {
					t.Errorf("stats: %d nacks, last %q", nacks, last)
				}
			},
		},
		{
			name: "a resource of the wrong type is nacked with the names still subscribed",
			resp: func(t *testing.T) *discoveryv3.DiscoveryResponse {
				return sotwResp(EndpointType, "e-2", "n6", anyOf(t, edsCluster("c1")))
			},
			want: []*discoveryv3.DiscoveryRequest{
				{TypeUrl: EndpointType, VersionInfo: "e-1", ResponseNonce: "n6", ResourceNames: []string{"c1"},
					ErrorDetail: nackDetail(`resource of type "` + ClusterType + `" in a "` + EndpointType + `" response`)},
			},
			check: func(t *testing.T, c *Client) {
				if got := endpointPort(t, c.State(), "c1"); got != 9001 {
					t.Errorf("endpoint port %d after a nack, want the last good 9001", got)
				}
			},
		},
		{
			name: "a good response after a nack is acked with its version",
			resp: func(t *testing.T) *discoveryv3.DiscoveryResponse {
				return sotwResp(EndpointType, "e-3", "n7", anyOf(t, cla("c1", 9002)))
			},
			want: []*discoveryv3.DiscoveryRequest{
				{TypeUrl: EndpointType, VersionInfo: "e-3", ResponseNonce: "n7", ResourceNames: []string{"c1"}},
			},
			check: func(t *testing.T, c *Client) {
				if got := endpointPort(t, c.State(), "c1"); got != 9002 {
					t.Errorf("endpoint port %d, want 9002", got)
				}
				if acks, nacks, _ := c.Stats(); acks != 5 || nacks != 2 {
					t.Errorf("stats: %d acks %d nacks, want 5 and 2", acks, nacks)
				}
			},
		},
	}...)

	f := &fakeADS{}
	addr := startFake(t, f)
	var cons consumer
	c := runClient(t, Config{Address: addr, ForceSotW: true, Apply: cons.apply})
	s := nextStream(t, f.sotw)
	// Envoy's order: CDS before LDS, both wildcard; the node only on the first.
	expectRequests(t, s,
		&discoveryv3.DiscoveryRequest{Node: testNode, TypeUrl: ClusterType},
		&discoveryv3.DiscoveryRequest{TypeUrl: ListenerType},
	)
	s.noRequest(t)
	runSteps(t, c, s, steps)
	s.noRequest(t)
	if n := f.deltaAttempts(); n != 0 {
		t.Errorf("%d delta streams with ForceSotW", n)
	}
}

// TestSotWLargeResponse: a route configuration larger than gRPC-Go's 4 MiB
// default receive limit (a mesh of thousands of services) is taken and
// ACKed, as Envoy takes it, not lost to a stream error.
func TestSotWLargeResponse(t *testing.T) {
	big := routeConfig("r1", "c1")
	for i := range 40000 {
		vh := proto.Clone(big.VirtualHosts[0]).(*routev3.VirtualHost)
		vh.Name = fmt.Sprintf("service-%05d.default.svc.cluster.local:9080", i)
		vh.Domains = []string{vh.Name, fmt.Sprintf("service-%05d", i), fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)}
		big.VirtualHosts = append(big.VirtualHosts, vh)
	}
	if n := proto.Size(big); n <= 4<<20 {
		t.Fatalf("the route configuration is %d bytes, want more than 4 MiB", n)
	}
	steps := append(sotwBootstrap[:len(sotwBootstrap):len(sotwBootstrap)], sotwStep{
		name: "a route configuration over 4 MiB is acked",
		resp: func(t *testing.T) *discoveryv3.DiscoveryResponse {
			return sotwResp(RouteType, "r-2", "n5", anyOf(t, big))
		},
		want: []*discoveryv3.DiscoveryRequest{
			{TypeUrl: RouteType, VersionInfo: "r-2", ResponseNonce: "n5", ResourceNames: []string{"r1"}},
		},
	})
	f := &fakeADS{}
	addr := startFake(t, f)
	var cons consumer
	c := runClient(t, Config{Address: addr, ForceSotW: true, Apply: cons.apply})
	s := nextStream(t, f.sotw)
	expectRequests(t, s,
		&discoveryv3.DiscoveryRequest{Node: testNode, TypeUrl: ClusterType},
		&discoveryv3.DiscoveryRequest{TypeUrl: ListenerType},
	)
	runSteps(t, c, s, steps)
	states := cons.states()
	if got := states[len(states)-1].Resources[RouteType]["r1"].Version; got != "r-2" {
		t.Errorf("the consumer holds r1 at version %q, want r-2", got)
	}
}

package xdsclient

import (
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

type deltaStep = step[*discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse]

func deltaResource(t *testing.T, name, version string, m proto.Message) *discoveryv3.Resource {
	return &discoveryv3.Resource{Name: name, Version: version, Resource: anyOf(t, m)}
}

// deltaBootstrap is the exchange that brings a delta client from nothing to
// a complete state: listener l1 (route r1), cluster c1 (EDS c1), route r1,
// endpoints c1 on port 9001.
var deltaBootstrap = []deltaStep{
	{
		name: "listener referencing route r1 is acked and r1 subscribed",
		resp: func(t *testing.T) *discoveryv3.DeltaDiscoveryResponse {
			return &discoveryv3.DeltaDiscoveryResponse{TypeUrl: ListenerType, Nonce: "d1",
				Resources: []*discoveryv3.Resource{deltaResource(t, "l1", "l1-a", listener(t, "l1", 15001, "r1"))}}
		},
		want: []*discoveryv3.DeltaDiscoveryRequest{
			{TypeUrl: ListenerType, ResponseNonce: "d1"},
			{TypeUrl: RouteType, ResourceNamesSubscribe: []string{"r1"}},
		},
	},
	{
		name: "eds cluster c1 is acked and its endpoints subscribed",
		resp: func(t *testing.T) *discoveryv3.DeltaDiscoveryResponse {
			return &discoveryv3.DeltaDiscoveryResponse{TypeUrl: ClusterType, Nonce: "d2",
				Resources: []*discoveryv3.Resource{deltaResource(t, "c1", "c1-a", edsCluster("c1"))}}
		},
		want: []*discoveryv3.DeltaDiscoveryRequest{
			{TypeUrl: ClusterType, ResponseNonce: "d2"},
			{TypeUrl: EndpointType, ResourceNamesSubscribe: []string{"c1"}},
		},
	},
	{
		name: "route r1 is acked",
		resp: func(t *testing.T) *discoveryv3.DeltaDiscoveryResponse {
			return &discoveryv3.DeltaDiscoveryResponse{TypeUrl: RouteType, Nonce: "d3",
				Resources: []*discoveryv3.Resource{deltaResource(t, "r1", "r1-a", routeConfig("r1", "c1"))}}
		},
		want: []*discoveryv3.DeltaDiscoveryRequest{{TypeUrl: RouteType, ResponseNonce: "d3"}},
	},
	{
		name: "endpoints c1 are acked and the state is complete",
		resp: func(t *testing.T) *discoveryv3.DeltaDiscoveryResponse {
			return &discoveryv3.DeltaDiscoveryResponse{TypeUrl: EndpointType, Nonce: "d4",
				Resources: []*discoveryv3.Resource{deltaResource(t, "c1", "e1-a", cla("c1", 9001))}}
		},
		want:  []*discoveryv3.DeltaDiscoveryRequest{{TypeUrl: EndpointType, ResponseNonce: "d4"}},
		check: checkComplete(9001),
	},
}

// TestDelta drives a delta stream: wildcard LDS and CDS with (empty) initial
// versions first, subscriptions to the routes and endpoints the accepted
// state references, an ACK by nonce for each accepted response, a NACK with
// the rejection's text that leaves the state unchanged, and an unsubscribe
// when the last reference to a route goes away.
func TestDelta(t *testing.T) {
	steps := append(deltaBootstrap[:len(deltaBootstrap):len(deltaBootstrap)],
		deltaStep{
			name: "a cluster the consumer rejects is nacked with its text",
			resp: func(t *testing.T) *discoveryv3.DeltaDiscoveryResponse {
				return &discoveryv3.DeltaDiscoveryResponse{TypeUrl: ClusterType, Nonce: "d5",
					Resources: []*discoveryv3.Resource{deltaResource(t, rejectCluster, "x-a", edsCluster(rejectCluster))}}
			},
			want: []*discoveryv3.DeltaDiscoveryRequest{{TypeUrl: ClusterType, ResponseNonce: "d5",
				ErrorDetail: nackDetail("cluster rejected: the proxy cannot serve it")}},
			check: func(t *testing.T, c *Client) {
				if _, ok := c.State().Clusters()[rejectCluster]; ok {
					t.Error("the rejected cluster is in the client's state")
				}
			},
		},
		deltaStep{
			name: "an invalid resource is nacked with the validation error",
			resp: func(t *testing.T) *discoveryv3.DeltaDiscoveryResponse {
				return &discoveryv3.DeltaDiscoveryResponse{TypeUrl: EndpointType, Nonce: "d6",
					Resources: []*discoveryv3.Resource{deltaResource(t, "c1", "e1-b", routeConfig("c1", "c1"))}}
			},
			want: []*discoveryv3.DeltaDiscoveryRequest{{TypeUrl: EndpointType, ResponseNonce: "d6",
				ErrorDetail: nackDetail(`resource of type "` + RouteType + `" in a "` + EndpointType + `" response`)}},
			check: func(t *testing.T, c *Client) {
				if got := endpointPort(t, c.State(), "c1"); got != 9001 {
					t.Errorf("endpoint port %d after a nack, want the last good 9001", got)
				}
			},
		},
		deltaStep{
			name: "an update after a nack is acked",
			resp: func(t *testing.T) *discoveryv3.DeltaDiscoveryResponse {
				return &discoveryv3.DeltaDiscoveryResponse{TypeUrl: EndpointType, Nonce: "d7",
					Resources: []*discoveryv3.Resource{deltaResource(t, "c1", "e1-c", cla("c1", 9002))}}
			},
			want: []*discoveryv3.DeltaDiscoveryRequest{{TypeUrl: EndpointType, ResponseNonce: "d7"}},
			check: func(t *testing.T, c *Client) {
				if got := endpointPort(t, c.State(), "c1"); got != 9002 {
					t.Errorf("endpoint port %d, want 9002", got)
				}
				if acks, nacks, _ := c.Stats(); acks != 5 || nacks != 2 {
					t.Errorf("stats: %d acks %d nacks, want 5 and 2", acks, nacks)
				}
			},
		},
		deltaStep{
			name: "removing the listener unsubscribes its route",
			resp: func(t *testing.T) *discoveryv3.DeltaDiscoveryResponse {
				return &discoveryv3.DeltaDiscoveryResponse{TypeUrl: ListenerType, Nonce: "d8", RemovedResources: []string{"l1"}}
			},
			want: []*discoveryv3.DeltaDiscoveryRequest{
				{TypeUrl: ListenerType, ResponseNonce: "d8"},
				{TypeUrl: RouteType, ResourceNamesUnsubscribe: []string{"r1"}},
			},
			check: func(t *testing.T, c *Client) {
				if n := len(c.State().Listeners()); n != 0 {
					t.Errorf("%d listeners after removal", n)
				}
			},
		},
	)

	f := &fakeADS{}
	addr := startFake(t, f)
	var cons consumer
	c := runClient(t, Config{Address: addr, Apply: cons.apply})
	s := nextStream(t, f.delta)
	expectRequests(t, s,
		&discoveryv3.DeltaDiscoveryRequest{Node: testNode, TypeUrl: ClusterType},
		&discoveryv3.DeltaDiscoveryRequest{TypeUrl: ListenerType},
	)
	s.noRequest(t)
	runSteps(t, c, s, steps)
	s.noRequest(t)
}

// TestDeltaFallback checks that only codes.Unimplemented on the delta stream
// makes the client switch to state of the world, at once and for good; other
// errors are retried over delta.
func TestDeltaFallback(t *testing.T) {
	tests := []struct {
		name      string
		deltaErr  error
		wantSotW  bool
		minDeltas int
	}{
		{name: "unimplemented falls back to sotw", deltaErr: status.Error(codes.Unimplemented, "no delta here"), wantSotW: true, minDeltas: 1},
		{name: "unavailable retries delta", deltaErr: status.Error(codes.Unavailable, "overloaded"), minDeltas: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeADS{deltaErr: tt.deltaErr}
			addr := startFake(t, f)
			runClient(t, Config{Address: addr, Apply: (&consumer{}).apply})
			if !tt.wantSotW {
				waitFor(t, "delta retries", func() bool { return f.deltaAttempts() >= tt.minDeltas })
				select {
				case <-f.sotw:
					t.Fatal("the client fell back to sotw on a retryable error")
				default:
				}
				return
			}
			s := nextStream(t, f.sotw)
			expectRequests(t, s,
				&discoveryv3.DiscoveryRequest{Node: testNode, TypeUrl: ClusterType},
				&discoveryv3.DiscoveryRequest{TypeUrl: ListenerType},
			)
			s.send(t, sotwResp(ClusterType, "c-1", "n1", anyOf(t, edsCluster("c1"))))
			expectRequests(t, s,
				&discoveryv3.DiscoveryRequest{TypeUrl: ClusterType, VersionInfo: "c-1", ResponseNonce: "n1"},
				&discoveryv3.DiscoveryRequest{TypeUrl: EndpointType, ResourceNames: []string{"c1"}},
			)
			if n := f.deltaAttempts(); n != tt.minDeltas {
				t.Errorf("%d delta streams before the fallback, want %d", n, tt.minDeltas)
			}
		})
	}
}

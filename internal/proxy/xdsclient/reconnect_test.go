package xdsclient

import (
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// TestReconnect ends the stream after the client reached a complete state
// and checks that the client opens a new one and re-subscribes to everything
// it holds (delta: with the version of every resource), and that the
// consumer is offered nothing while disconnected, so it keeps serving the
// last good config.
func TestReconnect(t *testing.T) {
	tests := []struct {
		name string
		sotw bool
		// reconnect brings the client to a complete state on a first
		// stream, ends that stream, and returns once a second stream is
		// open and has not been answered yet, having checked the client's
		// first requests on it; then it answers one of them.
		reconnect func(t *testing.T, f *fakeADS, c *Client, cons *consumer)
	}{
		{
			name: "delta resubscribes with initial resource versions",
			reconnect: func(t *testing.T, f *fakeADS, c *Client, cons *consumer) {
				s := nextStream(t, f.delta)
				expectRequests(t, s,
					&discoveryv3.DeltaDiscoveryRequest{Node: testNode, TypeUrl: ClusterType},
					&discoveryv3.DeltaDiscoveryRequest{TypeUrl: ListenerType},
				)
				runSteps(t, c, s, deltaBootstrap)
				offered := len(cons.states())
				close(s.end)
				s2 := nextStream(t, f.delta)
				expectRequests(t, s2,
					&discoveryv3.DeltaDiscoveryRequest{Node: testNode, TypeUrl: ClusterType,
						InitialResourceVersions: map[string]string{"c1": "c1-a"}},
					&discoveryv3.DeltaDiscoveryRequest{TypeUrl: ListenerType,
						InitialResourceVersions: map[string]string{"l1": "l1-a"}},
					&discoveryv3.DeltaDiscoveryRequest{TypeUrl: RouteType,
						InitialResourceVersions: map[string]string{"r1": "r1-a"}, ResourceNamesSubscribe: []string{"r1"}},
					&discoveryv3.DeltaDiscoveryRequest{TypeUrl: EndpointType,
						InitialResourceVersions: map[string]string{"c1": "e1-a"}, ResourceNamesSubscribe: []string{"c1"}},
				)
				s2.noRequest(t)
				checkDisconnected(t, c, cons, offered)
				// The server has nothing newer for EDS: it answers with a
				// changed endpoint, which is applied on top of the kept state.
				s2.send(t, &discoveryv3.DeltaDiscoveryResponse{TypeUrl: EndpointType, Nonce: "e1",
					Resources: []*discoveryv3.Resource{deltaResource(t, "c1", "e1-b", cla("c1", 9002))}})
				expectRequests(t, s2, &discoveryv3.DeltaDiscoveryRequest{TypeUrl: EndpointType, ResponseNonce: "e1"})
			},
		},
		{
			name: "sotw resubscribes to the names it holds",
			sotw: true,
			reconnect: func(t *testing.T, f *fakeADS, c *Client, cons *consumer) {
				s := nextStream(t, f.sotw)
				expectRequests(t, s,
					&discoveryv3.DiscoveryRequest{Node: testNode, TypeUrl: ClusterType},
					&discoveryv3.DiscoveryRequest{TypeUrl: ListenerType},
				)
				runSteps(t, c, s, sotwBootstrap)
				offered := len(cons.states())
				close(s.end)
				s2 := nextStream(t, f.sotw)
				// A new stream starts without versions or nonces (the server
				// sends everything again), but names the routes and
				// endpoints the kept state references right away.
				expectRequests(t, s2,
					&discoveryv3.DiscoveryRequest{Node: testNode, TypeUrl: ClusterType},
					&discoveryv3.DiscoveryRequest{TypeUrl: ListenerType},
					&discoveryv3.DiscoveryRequest{TypeUrl: RouteType, ResourceNames: []string{"r1"}},
					&discoveryv3.DiscoveryRequest{TypeUrl: EndpointType, ResourceNames: []string{"c1"}},
				)
				s2.noRequest(t)
				checkDisconnected(t, c, cons, offered)
				s2.send(t, sotwResp(EndpointType, "e-2", "m1", anyOf(t, cla("c1", 9002))))
				expectRequests(t, s2, &discoveryv3.DiscoveryRequest{TypeUrl: EndpointType, VersionInfo: "e-2",
					ResponseNonce: "m1", ResourceNames: []string{"c1"}})
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeADS{}
			addr := startFake(t, f)
			var cons consumer
			c := runClient(t, Config{Address: addr, ForceSotW: tt.sotw, Apply: cons.apply})
			tt.reconnect(t, f, c, &cons)
			waitFor(t, "connected", c.Connected)
			st := c.State()
			if !st.Complete() || endpointPort(t, st, "c1") != 9002 || len(st.Listeners()) != 1 || len(st.Routes()) != 1 {
				t.Errorf("state after reconnect: complete=%v listeners=%d routes=%d endpoint port %d, want the kept config with port 9002",
					st.Complete(), len(st.Listeners()), len(st.Routes()), endpointPort(t, st, "c1"))
			}
			for i, s := range cons.states() {
				if len(s.Listeners()) == 0 {
					t.Errorf("state %d offered to the consumer has no listener", i)
				}
			}
		})
	}
}

// checkDisconnected asserts what the proxy sees between two streams: not
// connected, no state offered since the stream ended (offered were offered
// before), and the last good config still in place.
func checkDisconnected(t *testing.T, c *Client, cons *consumer, offered int) {
	t.Helper()
	if c.Connected() {
		t.Error("Connected() is true before the new stream delivered anything")
	}
	if got := len(cons.states()); got != offered {
		t.Errorf("the consumer was offered %d states while reconnecting, want none", got-offered)
	}
	if st := c.State(); !st.Complete() || endpointPort(t, st, "c1") != 9001 || len(st.Listeners()) != 1 {
		t.Errorf("state while disconnected: complete=%v listeners=%d endpoint port %d, want the last good config",
			st.Complete(), len(st.Listeners()), endpointPort(t, st, "c1"))
	}
}

// TestReconnectBackoff ends every stream at once, without a response, and
// checks that the client keeps reconnecting and that the spacing of its
// attempts grows: attempt k+1 comes at least BackoffBase*2^k/2 after attempt
// k (the jittered delay is drawn from [d/2, d] with d doubling). These are
// lower bounds, which the client guarantees whatever the machine's load.
func TestReconnectBackoff(t *testing.T) {
	const base = 40 * time.Millisecond
	tests := []struct {
		name string
		sotw bool
	}{
		{name: "sotw", sotw: true},
		{name: "delta"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeADS{}
			addr := startFake(t, f)
			runClient(t, Config{Address: addr, ForceSotW: tt.sotw, Apply: (&consumer{}).apply,
				BackoffBase: base, BackoffMax: time.Second})
			var opened []time.Time
			for range 5 {
				if tt.sotw {
					s := nextStream(t, f.sotw)
					opened = append(opened, s.opened)
					close(s.end)
				} else {
					s := nextStream(t, f.delta)
					opened = append(opened, s.opened)
					close(s.end)
				}
			}
			for k := range len(opened) - 1 {
				gap := opened[k+1].Sub(opened[k])
				if min := (base << k) / 2; gap < min {
					t.Errorf("attempt %d came %v after attempt %d, want at least %v", k+2, gap, k+1, min)
				}
			}
			if first, last := opened[1].Sub(opened[0]), opened[4].Sub(opened[3]); last <= first {
				t.Errorf("reconnect spacing did not grow: first gap %v, fourth gap %v", first, last)
			}
			if n := f.deltaAttempts(); tt.sotw && n != 0 {
				t.Errorf("%d delta streams with ForceSotW", n)
			}
		})
	}
}

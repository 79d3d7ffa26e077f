package xdsclient

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait for the client or the server; a test that
// hits it has failed, so it is generous: under -race on a loaded CI machine
// a 4 MiB response took more than 5 s to reach the client and be answered.
const waitTimeout = time.Minute

// fakeStream is one ADS stream as the fake server sees it: every request the
// client sends arrives on reqs, every response put on resps is sent, and
// closing end makes the handler return (the stream ends with status OK).
type fakeStream[Req, Resp any] struct {
	opened time.Time
	reqs   chan *Req
	resps  chan *Resp
	end    chan struct{}
	ctx    context.Context
}

// fakeADS is a hand-written ADS server that hands every stream to the test,
// so the test controls versions and nonces exactly and sees every request.
type fakeADS struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer

	// deltaErr, when set, ends every delta stream at once with this error
	// (codes.Unimplemented is what a state-of-the-world-only server returns).
	deltaErr error

	sotw  chan *fakeStream[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]
	delta chan *fakeStream[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse]

	mu           sync.Mutex
	deltaStreams int
}

var _ discoveryv3.AggregatedDiscoveryServiceServer = (*fakeADS)(nil)

func (f *fakeADS) StreamAggregatedResources(s discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	return serveFake(s, f.sotw)
}

func (f *fakeADS) DeltaAggregatedResources(s discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	f.mu.Lock()
	f.deltaStreams++
	f.mu.Unlock()
	if f.deltaErr != nil {
		return f.deltaErr
	}
	return serveFake(s, f.delta)
}

func (f *fakeADS) deltaAttempts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.deltaStreams
}

// adsServerStream is the part of a generated ADS server stream serveFake uses.
type adsServerStream[Req, Resp any] interface {
	Send(*Resp) error
	Recv() (*Req, error)
	Context() context.Context
}

func serveFake[Req, Resp any](s adsServerStream[Req, Resp], streams chan *fakeStream[Req, Resp]) error {
	ctx := s.Context()
	fs := &fakeStream[Req, Resp]{opened: time.Now(), reqs: make(chan *Req, 64), resps: make(chan *Resp),
		end: make(chan struct{}), ctx: ctx}
	select {
	case streams <- fs:
	case <-ctx.Done():
		return ctx.Err()
	}
	go func() {
		for {
			r, err := s.Recv()
			if err != nil {
				return
			}
			select {
			case fs.reqs <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case r := <-fs.resps:
			if err := s.Send(r); err != nil {
				return err
			}
		case <-fs.end:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// startFake serves f on a loopback port until the test ends and returns the
// address.
func startFake(t *testing.T, f *fakeADS) string {
	t.Helper()
	f.sotw = make(chan *fakeStream[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse], 16)
	f.delta = make(chan *fakeStream[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse], 16)
	return serveADS(t, func(s *grpc.Server) { discoveryv3.RegisterAggregatedDiscoveryServiceServer(s, f) })
}

func serveADS(t *testing.T, register func(*grpc.Server)) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	register(srv)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("serve: %v", err)
		}
	})
	return lis.Addr().String()
}

// nextStream waits for the client to open a stream.
func nextStream[Req, Resp any](t *testing.T, streams chan *fakeStream[Req, Resp]) *fakeStream[Req, Resp] {
	t.Helper()
	select {
	case s := <-streams:
		return s
	case <-time.After(waitTimeout):
		t.Fatal("the client opened no stream")
		return nil
	}
}

// next waits for the client's next request on s.
func (s *fakeStream[Req, Resp]) next(t *testing.T) *Req {
	t.Helper()
	select {
	case r := <-s.reqs:
		return r
	case <-time.After(waitTimeout):
		t.Fatal("the client sent no request")
		return nil
	}
}

// send hands resp to the client.
func (s *fakeStream[Req, Resp]) send(t *testing.T, resp *Resp) {
	t.Helper()
	select {
	case s.resps <- resp:
	case <-s.ctx.Done():
		t.Fatal("stream ended before the response was sent")
	case <-time.After(waitTimeout):
		t.Fatal("response not sent")
	}
}

// expectRequests reads len(want) requests from s and compares each with want
// (Node is compared only where want sets it).
func expectRequests[Req, Resp any, PReq interface {
	*Req
	proto.Message
}](t *testing.T, s *fakeStream[Req, Resp], want ...PReq) {
	t.Helper()
	for i, w := range want {
		got := PReq(s.next(t))
		if !proto.Equal(got, w) {
			t.Fatalf("request %d:\n got %s\nwant %s", i, prototext.Format(got), prototext.Format(w))
		}
	}
}

// step is one response of the control plane and the requests the client
// must answer it with; check, when set, then inspects the client.
type step[PReq, Resp any] struct {
	name  string
	resp  func(t *testing.T) *Resp
	want  []PReq
	check func(t *testing.T, c *Client)
}

// runSteps plays steps on s, stopping the test at the first failure (the
// steps share one stream).
func runSteps[Req, Resp any, PReq interface {
	*Req
	proto.Message
}](t *testing.T, c *Client, s *fakeStream[Req, Resp], steps []step[PReq, Resp]) {
	t.Helper()
	for _, st := range steps {
		if !t.Run(st.name, func(t *testing.T) {
			s.send(t, st.resp(t))
			expectRequests(t, s, st.want...)
			if st.check != nil {
				st.check(t, c)
			}
		}) {
			t.FailNow()
		}
	}
}

// checkComplete asserts that the client's state is complete and holds
// cluster c1's endpoint on port.
func checkComplete(port uint32) func(t *testing.T, c *Client) {
	return func(t *testing.T, c *Client) {
		if st := c.State(); !st.Complete() || endpointPort(t, st, "c1") != port {
			t.Errorf("state complete=%v endpoint port %d, want complete with %d", st.Complete(), endpointPort(t, st, "c1"), port)
		}
	}
}

// noRequest asserts that the client sends nothing more for a short while.
func (s *fakeStream[Req, Resp]) noRequest(t *testing.T) {
	t.Helper()
	select {
	case r := <-s.reqs:
		t.Fatalf("unexpected request %v", r)
	case <-time.After(100 * time.Millisecond):
	}
}

// runClient runs a client with cfg (Insecure, a test node and a short backoff
// unless set) until the test ends.
func runClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	cfg.Insecure = true
	if cfg.Node == nil {
		cfg.Node = testNode
	}
	if cfg.BackoffBase == 0 {
		cfg.BackoffBase = 10 * time.Millisecond
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = 50 * time.Millisecond
	}
	c := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(waitTimeout):
			t.Error("run did not return after its context ended")
		}
	})
	return c
}

var testNode = &corev3.Node{Id: "sidecar~127.0.0.1~test.default~default.svc.cluster.local", UserAgentName: "bowline"}

// consumer records every state the client offers and rejects those holding
// a cluster named rejectCluster, as the proxy rejects config it cannot serve.
type consumer struct {
	mu      sync.Mutex
	offered []*State
}

const rejectCluster = "rejected"

func (c *consumer) apply(s *State) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offered = append(c.offered, s)
	if _, ok := s.Clusters()[rejectCluster]; ok {
		return errors.New("cluster rejected: the proxy cannot serve it")
	}
	return nil
}

func (c *consumer) states() []*State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*State(nil), c.offered...)
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Resource builders: Istio-shaped resources that xdsconfig accepts.

func anyOf(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}
}

func socketAddr(ip string, p uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: p}}}}
}

// listener is an HTTP listener whose HCM takes route configuration rds over ADS.
func listener(t *testing.T, name string, port uint32, rds string) *listenerv3.Listener {
	t.Helper()
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix:     name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: adsSource(), RouteConfigName: rds}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &routerv3.Router{})}}},
	}
	return &listenerv3.Listener{
		Name:    name,
		Address: socketAddr("127.0.0.1", port),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, hcm)}}}}},
	}
}

func edsCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource(), ServiceName: name},
		ConnectTimeout:       durationpb.New(time.Second),
	}
}

func routeConfig(name, cluster string) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{{
		Name: "all", Domains: []string{"*"},
		Routes: []*routev3.Route{{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}},
		}},
	}}}
}

func cla(name string, port uint32) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
		LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
			Endpoint: &endpointv3.Endpoint{Address: socketAddr("127.0.0.1", port)}}}},
	}}}
}

// endpointPorts returns the ports of the endpoints the state holds for cluster.
func endpointPort(t *testing.T, s *State, cluster string) uint32 {
	t.Helper()
	r := s.Resources[EndpointType][cluster]
	if r == nil {
		return 0
	}
	m := &endpointv3.ClusterLoadAssignment{}
	if err := r.Raw.UnmarshalTo(m); err != nil {
		t.Fatal(err)
	}
	return m.GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetPortValue()
}

package proxy_test

import (
	"context"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// testService is a tiny grpc.testing.TestService: UnaryCall answers with the
// requested status (or UNAVAILABLE for the first failFirst calls), and
// FullDuplexCall echoes every payload and ends with a trailer.
type testService struct {
	testgrpc.UnimplementedTestServiceServer
	calls     atomic.Int64
	failFirst int64
}

func (s *testService) UnaryCall(ctx context.Context, in *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	if n := s.calls.Add(1); n <= s.failFirst {
		return nil, status.Error(codes.Unavailable, "warming up")
	}
	if st := in.GetResponseStatus(); st != nil && st.GetCode() != 0 {
		return nil, status.Error(codes.Code(st.GetCode()), st.GetMessage())
	}
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "unary"))
	return &testgrpc.SimpleResponse{Payload: in.GetPayload()}, nil
}

func (s *testService) FullDuplexCall(stream testgrpc.TestService_FullDuplexCallServer) error {
	for {
		in, err := stream.Recv()
		if err == io.EOF {
			stream.SetTrailer(metadata.Pairs("x-trailer", "bidi"))
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: in.GetPayload()}); err != nil {
			return err
		}
	}
}

func startGRPC(t *testing.T, svc *testService) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, svc)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

func h2Cluster(name string) *clusterv3.Cluster {
	return clusterWith(name, func(c *clusterv3.Cluster) { c.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{} })
}

// TestGRPC: h2c downstream and upstream; unary and bidi streaming calls with
// trailers; grpc-status reaches the grpc_response_status label; gRPC retry
// conditions retry trailers-only UNAVAILABLE answers and report URX when
// exhausted.
func TestGRPC(t *testing.T) {
	ok := &testService{}
	flaky := &testService{failFirst: 2}
	down := &testService{failFirst: 1 << 30}
	lp := freePort(t)
	retry := func(prefix, cluster string, n uint32) *routev3.Route {
		r := routeTo(prefix, cluster)
		r.GetRoute().RetryPolicy = &routev3.RetryPolicy{RetryOn: "cancelled,unavailable", NumRetries: wrapperspb.UInt32(n)}
		r.Match.Headers = nil
		return r
	}
	rc := &routev3.RouteConfiguration{Name: "grpc", VirtualHosts: []*routev3.VirtualHost{
		{Name: "flaky", Domains: []string{"flaky"}, Routes: []*routev3.Route{retry("/", "flaky", 3)}},
		{Name: "down", Domains: []string{"down"}, Routes: []*routev3.Route{retry("/", "down", 1)}},
		{Name: "ok", Domains: []string{"*"}, Routes: []*routev3.Route{routeTo("/", "ok")}},
	}}
	e := newEnv(t, resources(
		[]types.Resource{listenerOf(t, "grpc", "127.0.0.1", lp, true, hcmFilter(t, "grpc"))},
		[]types.Resource{rc},
		[]types.Resource{h2Cluster("ok"), h2Cluster("flaky"), h2Cluster("down")},
		[]types.Resource{cla("ok", startGRPC(t, ok)), cla("flaky", startGRPC(t, flaky)), cla("down", startGRPC(t, down))}))
	dial := func(authority string) testgrpc.TestServiceClient {
		cc, err := grpc.NewClient(hostPort(lp), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority(authority))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return testgrpc.NewTestServiceClient(cc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := dial("ok")
	t.Run("unary with trailer", func(t *testing.T) {
		var tr metadata.MD
		resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("hi")}}, grpc.Trailer(&tr))
		if err != nil || string(resp.GetPayload().GetBody()) != "hi" {
			t.Fatalf("unary: %v %v", resp, err)
		}
		if got := tr.Get("x-trailer"); len(got) != 1 || got[0] != "unary" {
			t.Errorf("trailer x-trailer = %v", got)
		}
	})
	t.Run("unary error status", func(t *testing.T) {
		_, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: int32(codes.NotFound), Message: "nope"}})
		if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "nope") {
			t.Fatalf("err = %v, want NotFound nope", err)
		}
		e.waitMetric(t, `grpc_response_status="5"`, `grpc_response_status="0"`, `request_protocol="grpc"`)
	})
	t.Run("bidi streaming", func(t *testing.T) {
		st, err := client.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			msg := "m" + itoa(i)
			if err := st.Send(&testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: []byte(msg)}}); err != nil {
				t.Fatal(err)
			}
			in, err := st.Recv() // each answer arrives before the next send: true streaming
			if err != nil || string(in.GetPayload().GetBody()) != msg {
				t.Fatalf("recv %d: %v %v", i, in, err)
			}
		}
		_ = st.CloseSend()
		if _, err := st.Recv(); err != io.EOF {
			t.Fatalf("end of stream: %v", err)
		}
		if got := st.Trailer().Get("x-trailer"); len(got) != 1 || got[0] != "bidi" {
			t.Errorf("trailer = %v", got)
		}
	})
	t.Run("retry on unavailable", func(t *testing.T) {
		if _, err := dial("flaky").UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
			t.Fatalf("flaky after retries: %v", err)
		}
		if n := flaky.calls.Load(); n != 3 {
			t.Errorf("backend saw %d calls, want 3", n)
		}
	})
	t.Run("retries exhausted is URX", func(t *testing.T) {
		_, err := dial("down").UnaryCall(ctx, &testgrpc.SimpleRequest{})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("err = %v, want Unavailable", err)
		}
		if n := down.calls.Load(); n != 2 {
			t.Errorf("backend saw %d calls, want 2", n)
		}
		e.waitMetric(t, `grpc_response_status="14",reporter="source",request_protocol="grpc",response_code="200",response_flags="URX"`)
	})
}

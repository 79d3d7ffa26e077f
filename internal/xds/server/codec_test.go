package server

import (
	"fmt"
	"strings"
	"testing"
	"unsafe"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func TestCodecRoundTrip(t *testing.T) {
	big := make([]byte, 300)
	for i := range big {
		big[i] = byte(i)
	}
	cases := []struct {
		name string
		msg  proto.Message
	}{
		{"response", &discovery.DiscoveryResponse{VersionInfo: "v1", TypeUrl: "t", Nonce: "7", Resources: []*anypb.Any{
			{TypeUrl: "t", Value: []byte{1, 2, 3}}, {TypeUrl: "t"}, {Value: big}, {TypeUrl: "t", Value: big}}}},
		{"response without version", &discovery.DiscoveryResponse{TypeUrl: "t", Resources: []*anypb.Any{{TypeUrl: "t", Value: big}},
			ControlPlane: &core.ControlPlane{Identifier: "cp"}, Canary: true}},
		{"empty response", &discovery.DiscoveryResponse{VersionInfo: "v", TypeUrl: "t", Nonce: "1"}},
		{"request", &discovery.DiscoveryRequest{TypeUrl: "t", ResourceNames: []string{"a", "b"}}},
	}
	c := newCodec()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data, err := c.Marshal(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			got := tc.msg.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(data.Materialize(), got); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, tc.msg) {
				t.Fatalf("round trip: got %v, want %v", got, tc.msg)
			}
		})
	}
}

// TestCodecRequestNames: a request's resource names come out as sent
// (with every other field), the same name in two requests is one string,
// and a name that is not UTF-8 is refused as the proto codec refuses it.
func TestCodecRequestNames(t *testing.T) {
	c := newCodec()
	decode := func(req *discovery.DiscoveryRequest) (*discovery.DiscoveryRequest, error) {
		b, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		got := &discovery.DiscoveryRequest{}
		return got, c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, got)
	}
	tests := []*discovery.DiscoveryRequest{
		{TypeUrl: "t", VersionInfo: "v1", ResourceNames: []string{"outbound|80||a", "", "outbound|80||b", "outbound|80||a"}, ResponseNonce: "3",
			Node: &core.Node{Id: "sidecar~10.0.0.1~a.ns~ns.svc.cluster.local"}},
		{TypeUrl: "t", Node: &core.Node{Id: "n"}},
		{ResourceNames: []string{"only"}},
	}
	for i, req := range tests {
		got, err := decode(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if !proto.Equal(got, req) {
			t.Fatalf("request %d: got %v, want %v", i, got, req)
		}
	}
	a, _ := decode(tests[0])
	b, _ := decode(tests[0])
	if unsafe.StringData(a.ResourceNames[0]) != unsafe.StringData(b.ResourceNames[0]) {
		t.Error("the same name in two requests is two strings")
	}
	bad := []byte("outbound|80||\xff")
	raw := protowire.AppendTag(nil, resourceNamesField, protowire.BytesType)
	raw = protowire.AppendBytes(raw, bad)
	err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(raw)}, &discovery.DiscoveryRequest{})
	if err == nil || !strings.Contains(err.Error(), "invalid UTF-8") {
		t.Errorf("name not UTF-8: err %v, want invalid UTF-8", err)
	}
}

// BenchmarkUnmarshalAck decodes a state-of-the-world EDS ACK naming 1200
// load assignments, as every sidecar of the benchmark mesh sends after
// every EDS response: "proto" is gRPC's codec plus interning each name
// (what the server did before), "table" the server's codec.
func BenchmarkUnmarshalAck(b *testing.B) {
	req := &discovery.DiscoveryRequest{TypeUrl: "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment", VersionInfo: "0123456789abcdef", ResponseNonce: "42"}
	for i := range 1200 {
		req.ResourceNames = append(req.ResourceNames, fmt.Sprintf("outbound|8080|v%d|svc-%04d.default.svc.cluster.local", i%3, i))
	}
	data, err := proto.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	c := newCodec()
	b.Run("proto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r discovery.DiscoveryRequest
			if err := c.base.Unmarshal(mem.BufferSlice{mem.SliceBuffer(data)}, &r); err != nil {
				b.Fatal(err)
			}
			intern(r.ResourceNames)
		}
	})
	b.Run("table", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r discovery.DiscoveryRequest
			if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(data)}, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

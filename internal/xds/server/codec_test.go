package server

import (
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
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

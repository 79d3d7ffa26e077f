package xdsconfig_test

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// TestTrafficDirection: a listener's direction (reporter=destination for
// inbound) comes from traffic_direction; only when that is unspecified is it
// guessed from Istio's inbound listener names.
func TestTrafficDirection(t *testing.T) {
	for _, tc := range []struct {
		name string
		dir  corev3.TrafficDirection
		want bool
	}{
		{"ingress", corev3.TrafficDirection_INBOUND, true},
		{"inbound|9080", corev3.TrafficDirection_OUTBOUND, false},
		{"inbound|9080", corev3.TrafficDirection_UNSPECIFIED, true},
		{"virtualInbound", corev3.TrafficDirection_UNSPECIFIED, true},
		{"0.0.0.0_9080", corev3.TrafficDirection_UNSPECIFIED, false},
	} {
		l, err := xdsconfig.UnmarshalListener(&listenerv3.Listener{Name: tc.name, TrafficDirection: tc.dir, UseOriginalDst: wrapperspb.Bool(true),
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 9080}}}}})
		if err != nil {
			t.Fatal(err)
		}
		if l.Inbound != tc.want {
			t.Errorf("listener %q with traffic_direction %v: Inbound = %v, want %v", tc.name, tc.dir, l.Inbound, tc.want)
		}
	}
}

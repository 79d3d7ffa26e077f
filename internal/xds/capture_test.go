package xds_test

import (
	"path/filepath"
	"slices"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/xds"
)

// capturedSidecar is productpage in its own network namespace, as `bowline up
// --netns` runs it: pod IP 10.250.0.5, app on containerPort 9080, traffic
// captured by iptables (no explicit proxy).
var capturedSidecar = &model.Proxy{
	ID: "sidecar~10.250.0.5~productpage-v1-0.default~default.svc.cluster.local", Type: model.SidecarProxy,
	Namespace: "default", WorkloadName: "productpage-v1", ServiceAccount: "bookinfo-productpage",
	Labels: map[string]string{"app": "productpage", "version": "v1"}, IPs: []string{"10.250.0.5"},
	Inbound:          []model.PortMapping{{Port: 9080, TargetPort: 9080}},
	InterceptionMode: model.InterceptionRedirect,
}

const tcpSvcs = "capture/tcp.yaml"

func TestGoldenCaptured(t *testing.T) {
	cases := []struct {
		name  string
		files []string
	}{
		{"sidecar-captured", []string{svcs, drs, tcpSvcs, "bookinfo/virtual-service-reviews-80-20.yaml"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			snap := snapshot(t, tc.files...)
			res := xds.Generate(snap, capturedSidecar)
			validateAll(t, res)
			compareGolden(t, filepath.Join("testdata", tc.name+".golden"), render(t, res))
		})
	}
}

func listenersByName(res xds.Resources) map[string]*listenerv3.Listener {
	out := map[string]*listenerv3.Listener{}
	for _, r := range res.Listeners {
		l := r.(*listenerv3.Listener)
		out[l.GetName()] = l
	}
	return out
}

func TestCapturedListeners(t *testing.T) {
	snap := snapshot(t, svcs, drs, tcpSvcs)
	res := xds.Generate(snap, capturedSidecar)
	ls := listenersByName(res)

	out := ls[xds.VirtualOutboundListener]
	if out == nil || !out.GetUseOriginalDst().GetValue() || out.GetAddress().GetSocketAddress().GetPortValue() != 15001 {
		t.Fatalf("virtualOutbound = %v", out)
	}
	if got := out.GetDefaultFilterChain().GetName(); got != "virtualOutbound-catchall-tcp" {
		t.Errorf("virtualOutbound default chain = %q", got)
	}

	in := ls[xds.VirtualInboundListener]
	if in == nil || in.GetAddress().GetSocketAddress().GetPortValue() != 15006 || in.GetUseOriginalDst().GetValue() {
		t.Fatalf("virtualInbound = %v", in)
	}
	// PERMISSIVE (no PeerAuthentication): tls_inspector tells mTLS from plaintext.
	if len(in.GetListenerFilters()) != 2 || in.GetListenerFilters()[0].GetName() != "envoy.filters.listener.original_dst" ||
		in.GetListenerFilters()[1].GetName() != "envoy.filters.listener.tls_inspector" {
		t.Errorf("virtualInbound listener filters = %v", in.GetListenerFilters())
	}
	var chains []string
	for _, fc := range in.GetFilterChains() {
		chains = append(chains, fc.GetName())
	}
	if want := []string{"0.0.0.0_9080", "0.0.0.0_9080", "virtualInbound-blackhole", "virtualInbound"}; !slices.Equal(chains, want) {
		t.Errorf("virtualInbound chains = %v, want %v", chains, want)
	}
	for i, proto := range []string{"tls", "raw_buffer"} {
		m := in.GetFilterChains()[i].GetFilterChainMatch()
		if m.GetDestinationPort().GetValue() != 9080 || m.GetTransportProtocol() != proto {
			t.Errorf("chain %d 0.0.0.0_9080 matches %v, want port 9080 and %s", i, m, proto)
		}
	}
	fc := in.GetFilterChains()[1]
	hcm := &hcmv3.HttpConnectionManager{}
	if err := fc.GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
		t.Fatal(err)
	}
	if got := hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetCluster(); got != "inbound|9080||" {
		t.Errorf("inbound chain routes to %q", got)
	}

	if ls["inbound|9080"] != nil {
		t.Error("a captured sidecar must not bind inbound|9080 on the pod IP (the app owns 0.0.0.0:9080)")
	}
	if ls[xds.ExplicitProxyRoute] != nil {
		t.Error("no explicit proxy listener without BOWLINE_OUTBOUND_HTTP")
	}
	// TCP: the addressless service gets its auto VIP; the other keeps its own.
	vips := model.AutoVIPs(snap.Services())
	mysql := vips["mysqldb.default.svc.cluster.local"]
	if !mysql.IsValid() || ls[mysql.String()+"_3306"] == nil {
		t.Errorf("no listener %s_3306 for mysqldb; have %v", mysql, keys(ls))
	}
	if ls["240.240.9.9_6379"] == nil || ls["0.0.0.0_3306"] != nil {
		t.Errorf("TCP listeners: %v", keys(ls))
	}
}

// TestExplicitUnchanged: without INTERCEPTION_MODE the sidecar is exactly as
// before (no virtual listeners, no auto VIPs).
func TestExplicitUnchanged(t *testing.T) {
	snap := snapshot(t, svcs, drs, tcpSvcs)
	none := *capturedSidecar
	none.InterceptionMode = model.InterceptionNone
	ls := listenersByName(xds.Generate(snap, &none))
	if ls[xds.VirtualOutboundListener] != nil || ls[xds.VirtualInboundListener] != nil || ls["inbound|9080"] == nil {
		t.Errorf("explicit sidecar listeners: %v", keys(ls))
	}
	if ls["0.0.0.0_3306"] == nil {
		t.Errorf("explicit sidecar: addressless TCP service should stay on 0.0.0.0_3306: %v", keys(ls))
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Package dataplane benchmarks the Bowline proxy's data path on loopback.
package dataplane

import (
	"context"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
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
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/bowline-mesh/bowline/internal/proxy"
	"github.com/bowline-mesh/bowline/internal/proxy/xdsclient"
)

const benchNode = "sidecar~127.0.0.1~bench.default~default.svc.cluster.local"

func addr(ip string, p int) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)}}}}
}

func mustAny(b *testing.B, m types.Resource) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		b.Fatal(err)
	}
	return a
}

func freePort(b *testing.B) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// setup runs a backend, a go-control-plane server and one proxy; it returns
// the backend and proxy addresses.
func setup(b *testing.B) (backendAddr, proxyAddr string) {
	bl, _ := net.Listen("tcp", "127.0.0.1:0")
	body := []byte("hello")
	bs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) })}
	go func() { _ = bs.Serve(bl) }()
	b.Cleanup(func() { _ = bs.Close() })
	backendAddr = bl.Addr().String()
	bport, _ := strconv.Atoi(backendAddr[len("127.0.0.1:"):])

	c := cache.NewSnapshotCache(true, cache.IDHash{}, nil)
	gl, _ := net.Listen("tcp", "127.0.0.1:0")
	gs := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, serverv3.NewServer(context.Background(), c, nil))
	go func() { _ = gs.Serve(gl) }()
	b.Cleanup(gs.Stop)

	pport := freePort(b)
	ads := &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}
	hcm := &hcmv3.HttpConnectionManager{StatPrefix: "bench",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads, RouteConfigName: "80"}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(b, &routerv3.Router{})}}}}
	snap, err := cache.NewSnapshot("1", map[resource.Type][]types.Resource{
		resource.ListenerType: {&listenerv3.Listener{Name: "outbound_http", Address: addr("127.0.0.1", pport),
			FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: "hcm",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(b, hcm)}}}}}}},
		resource.RouteType: {&routev3.RouteConfiguration{Name: "80", VirtualHosts: []*routev3.VirtualHost{{Name: "svc",
			Domains: []string{"*"}, Routes: []*routev3.Route{{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "svc"}}}}}}}}},
		resource.ClusterType: {&clusterv3.Cluster{Name: "svc", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads}}},
		resource.EndpointType: {&endpointv3.ClusterLoadAssignment{ClusterName: "svc", Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
				Endpoint: &endpointv3.Endpoint{Address: addr("127.0.0.1", bport)}}}}}}}},
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.SetSnapshot(context.Background(), benchNode, snap); err != nil {
		b.Fatal(err)
	}
	p := proxy.New(proxy.Config{Discovery: gl.Addr().String(), InsecureXDS: true, AccessLog: "off",
		Node: xdsclient.NodeInfo{ID: benchNode, Namespace: "default", Workload: "bench"}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(10 * time.Second); !p.Ready(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("proxy not ready")
		}
	}
	return backendAddr, "127.0.0.1:" + strconv.Itoa(pport)
}

// measure sends sequential keep-alive GETs to target and returns per-request
// latencies.
func measure(b *testing.B, target string, n int) []time.Duration {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	lat := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		resp, err := client.Get("http://" + target + "/")
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat
}

func pct(l []time.Duration, q float64) float64 {
	return float64(l[int(float64(len(l)-1)*q)].Microseconds())
}

// BenchmarkProxyAddedLatency measures one HTTP/1.1 request through one proxy
// against the same request sent directly, and reports the difference.
func BenchmarkProxyAddedLatency(b *testing.B) {
	backend, px := setup(b)
	measure(b, px, 200) // warm up pools
	b.ResetTimer()
	via := measure(b, px, b.N)
	b.StopTimer()
	direct := measure(b, backend, b.N)
	b.ReportMetric(pct(via, 0.5)-pct(direct, 0.5), "added-p50-us")
	b.ReportMetric(pct(via, 0.99)-pct(direct, 0.99), "added-p99-us")
	b.ReportMetric(pct(via, 0.99), "proxied-p99-us")
	b.ReportMetric(pct(direct, 0.99), "direct-p99-us")
}

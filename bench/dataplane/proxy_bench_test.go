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
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bowline-mesh/bowline/internal/ca"
	"github.com/bowline-mesh/bowline/internal/identity"
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
func setup(b *testing.B) (backendAddr, proxyAddr string) { return setupTracing(b, -1) }

// setupTracing is setup with the HCM tracing at tracePct percent to a Zipkin
// collector that accepts and drops the spans (no tracing when tracePct < 0).
func setupTracing(b *testing.B, tracePct float64) (backendAddr, proxyAddr string) {
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
	var extraClusters, extraEndpoints []types.Resource
	if tracePct >= 0 {
		zl, _ := net.Listen("tcp", "127.0.0.1:0")
		zs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusAccepted)
		})}
		go func() { _ = zs.Serve(zl) }()
		b.Cleanup(func() { _ = zs.Close() })
		zport := zl.Addr().(*net.TCPAddr).Port
		zc := &tracev3.ZipkinConfig{CollectorEndpointVersion: tracev3.ZipkinConfig_HTTP_JSON, TraceId_128Bit: true,
			CollectorService: &corev3.HttpService{HttpUri: &corev3.HttpUri{Uri: "http://zipkin:9411/api/v2/spans",
				HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "zipkin"}}}}
		hcm.Tracing = &hcmv3.HttpConnectionManager_Tracing{RandomSampling: &typev3.Percent{Value: tracePct},
			Provider: &tracev3.Tracing_Http{Name: "envoy.tracers.zipkin", ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(b, zc)}}}
		extraClusters = append(extraClusters, &clusterv3.Cluster{Name: "zipkin", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads}})
		extraEndpoints = append(extraEndpoints, &endpointv3.ClusterLoadAssignment{ClusterName: "zipkin", Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
				Endpoint: &endpointv3.Endpoint{Address: addr("127.0.0.1", zport)}}}}}}})
	}
	snap, err := cache.NewSnapshot("1", map[resource.Type][]types.Resource{
		resource.ListenerType: {&listenerv3.Listener{Name: "outbound_http", Address: addr("127.0.0.1", pport),
			FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: "hcm",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(b, hcm)}}}}}}},
		resource.RouteType: {&routev3.RouteConfiguration{Name: "80", VirtualHosts: []*routev3.VirtualHost{{Name: "svc",
			Domains: []string{"*"}, Routes: []*routev3.Route{{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "svc"}}}}}}}}},
		resource.ClusterType: append([]types.Resource{&clusterv3.Cluster{Name: "svc", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads}}}, extraClusters...),
		resource.EndpointType: append([]types.Resource{&endpointv3.ClusterLoadAssignment{ClusterName: "svc", Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
				Endpoint: &endpointv3.Endpoint{Address: addr("127.0.0.1", bport)}}}}}}}}, extraEndpoints...),
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

// BenchmarkProxyTracing is BenchmarkProxyAddedLatency with the HCM tracing
// off, sampling 1% and 100% of requests (spans exported as Zipkin JSON to a
// collector on loopback): the cost of tracing on the request path.
func BenchmarkProxyTracing(b *testing.B) {
	for _, c := range []struct {
		name string
		pct  float64
	}{{"off", -1}, {"sampled-1pct", 1}, {"sampled-100pct", 100}} {
		b.Run(c.name, func(b *testing.B) {
			backend, px := setupTracing(b, c.pct)
			measure(b, px, 200)
			b.ResetTimer()
			via := measure(b, px, b.N)
			b.StopTimer()
			direct := measure(b, backend, b.N)
			b.ReportMetric(pct(via, 0.5)-pct(direct, 0.5), "added-p50-us")
			b.ReportMetric(pct(via, 0.99)-pct(direct, 0.99), "added-p99-us")
		})
	}
}

// Two sidecars with mTLS: client proxy (outbound listener, ISTIO_MUTUAL
// cluster) -> server proxy (inbound listener, STRICT mTLS) -> backend; the
// certificates come from a real CA through identity agents, as in a mesh.

const (
	benchClientNode = "sidecar~127.0.0.1~client.default~default.svc.cluster.local"
	benchServerNode = "sidecar~127.0.0.1~server.default~default.svc.cluster.local"
)

func sdsRef(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}}
}

func tlsSocket(b *testing.B, m types.Resource) *corev3.TransportSocket {
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(b, m)}}
}

func commonTLS(alpn ...string) *tlsv3.CommonTlsContext {
	return &tlsv3.CommonTlsContext{
		TlsParams:                      &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3},
		AlpnProtocols:                  alpn,
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef("default")},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{},
				ValidationContextSdsSecretConfig: sdsRef("ROOTCA")}}}
}

// sidecarResources is one sidecar's config: a listener on lport routing
// everything to cluster name, whose one endpoint is upstream.
func sidecarResources(b *testing.B, name string, lport, upstream int, downTLS, upTLS *corev3.TransportSocket) map[resource.Type][]types.Resource {
	ads := &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}
	hcm := &hcmv3.HttpConnectionManager{StatPrefix: name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads, RouteConfigName: name}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(b, &routerv3.Router{})}}}}
	return map[resource.Type][]types.Resource{
		resource.ListenerType: {&listenerv3.Listener{Name: name, Address: addr("127.0.0.1", lport),
			FilterChains: []*listenerv3.FilterChain{{TransportSocket: downTLS, Filters: []*listenerv3.Filter{{Name: "hcm",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(b, hcm)}}}}}}},
		resource.RouteType: {&routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{{Name: "svc",
			Domains: []string{"*"}, Routes: []*routev3.Route{{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: name}}}}}}}}},
		resource.ClusterType: {&clusterv3.Cluster{Name: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads}, TransportSocket: upTLS}},
		resource.EndpointType: {&endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
				Endpoint: &endpointv3.Endpoint{Address: addr("127.0.0.1", upstream)}}}}}}}},
	}
}

// benchAgent runs an identity agent for default/<sa> against caAddr.
func benchAgent(b *testing.B, caAddr string, root []byte, tokens *ca.Tokens, sa string) *identity.Agent {
	a, err := identity.New(identity.Config{CAAddress: caAddr, RootCert: root, Token: tokens.Mint("default", sa)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = a.Run(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done })
	select {
	case <-a.Ready():
	case <-time.After(10 * time.Second):
		b.Fatal("identity agent got no certificate")
	}
	return a
}

func runProxy(b *testing.B, cp, node, workload string, ident proxy.CertSource) {
	p := proxy.New(proxy.Config{Discovery: cp, InsecureXDS: true, AccessLog: "off", Identity: ident,
		Node: xdsclient.NodeInfo{ID: node, Namespace: "default", Workload: workload, ServiceAccount: workload,
			IPs: []string{"127.0.0.1"}}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(10 * time.Second); !p.Ready(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("proxy not ready")
		}
	}
}

// setupMTLS runs a backend, a CA, a control plane and two sidecars with mTLS
// between them; it returns the backend and the client sidecar's addresses.
func setupMTLS(b *testing.B) (backendAddr, proxyAddr string) {
	bl, _ := net.Listen("tcp", "127.0.0.1:0")
	body := []byte("hello")
	bs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) })}
	go func() { _ = bs.Serve(bl) }()
	b.Cleanup(func() { _ = bs.Close() })
	backendAddr = bl.Addr().String()

	authority, err := ca.New(ca.Config{})
	if err != nil {
		b.Fatal(err)
	}
	tokens := ca.NewTokens()
	cs, err := ca.NewServer(ca.ServerConfig{Address: "127.0.0.1:0", CA: authority, Authenticator: tokens})
	if err != nil {
		b.Fatal(err)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	cdone := make(chan struct{})
	go func() { _ = cs.Run(cctx); close(cdone) }()
	b.Cleanup(func() { ccancel(); <-cdone })
	<-cs.Listening()
	root := ca.EncodeCertificates(authority.TrustBundle()...)

	c := cache.NewSnapshotCache(true, cache.IDHash{}, nil)
	gl, _ := net.Listen("tcp", "127.0.0.1:0")
	gs := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, serverv3.NewServer(context.Background(), c, nil))
	go func() { _ = gs.Serve(gl) }()
	b.Cleanup(gs.Stop)

	in, out := freePort(b), freePort(b)
	down := tlsSocket(b, &tlsv3.DownstreamTlsContext{RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext: commonTLS("istio-peer-exchange", "istio", "h2", "http/1.1")})
	up := tlsSocket(b, &tlsv3.UpstreamTlsContext{Sni: "outbound_.80_._.server.default.svc.cluster.local",
		CommonTlsContext: commonTLS("istio-peer-exchange", "istio")})
	for _, n := range []struct {
		node string
		res  map[resource.Type][]types.Resource
	}{
		{benchServerNode, sidecarResources(b, "inbound", in, bl.Addr().(*net.TCPAddr).Port, down, nil)},
		{benchClientNode, sidecarResources(b, "outbound", out, in, nil, up)},
	} {
		snap, err := cache.NewSnapshot("1", n.res)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.SetSnapshot(context.Background(), n.node, snap); err != nil {
			b.Fatal(err)
		}
	}
	runProxy(b, gl.Addr().String(), benchServerNode, "server", benchAgent(b, cs.Addr().String(), root, tokens, "server"))
	runProxy(b, gl.Addr().String(), benchClientNode, "client", benchAgent(b, cs.Addr().String(), root, tokens, "client"))
	return backendAddr, "127.0.0.1:" + strconv.Itoa(out)
}

// BenchmarkTwoSidecarsMTLS measures one HTTP/1.1 request through a client
// and a server sidecar with mTLS between them, against the same request sent
// directly; allocations include both proxies, client and backend.
func BenchmarkTwoSidecarsMTLS(b *testing.B) {
	backend, px := setupMTLS(b)
	measure(b, px, 200) // warm up pools and TLS sessions
	b.ResetTimer()
	via := measure(b, px, b.N)
	b.StopTimer()
	direct := measure(b, backend, b.N)
	b.ReportMetric(pct(via, 0.5)-pct(direct, 0.5), "added-p50-us")
	b.ReportMetric(pct(via, 0.99)-pct(direct, 0.99), "added-p99-us")
	b.ReportMetric(pct(via, 0.99), "proxied-p99-us")
	b.ReportMetric(pct(direct, 0.99), "direct-p99-us")
}

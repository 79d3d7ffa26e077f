package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
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
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bowline-mesh/bowline/internal/proxy"
	"github.com/bowline-mesh/bowline/internal/proxy/xdsclient"
)

const nodeID = "sidecar~127.0.0.1~test.default~default.svc.cluster.local"

// controlPlane is a real go-control-plane ADS server on loopback.
type controlPlane struct {
	cache   cache.SnapshotCache
	addr    string
	srv     *grpc.Server
	version int
	mu      sync.Mutex
}

func startControlPlane(t *testing.T, addr string) *controlPlane {
	t.Helper()
	cp := &controlPlane{cache: cache.NewSnapshotCache(true, cache.IDHash{}, nil)}
	cp.serve(t, addr)
	return cp
}

func (cp *controlPlane) serve(t *testing.T, addr string) {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen control plane: %v", err)
	}
	cp.addr = ln.Addr().String()
	cp.srv = grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(cp.srv, serverv3.NewServer(context.Background(), cp.cache, nil))
	go func() { _ = cp.srv.Serve(ln) }()
	t.Cleanup(cp.stop)
}

func (cp *controlPlane) stop() {
	if cp.srv != nil {
		cp.srv.Stop()
		cp.srv = nil
	}
}

// push installs a new snapshot of resources for the test node.
func (cp *controlPlane) push(t *testing.T, res map[resource.Type][]types.Resource) {
	t.Helper()
	cp.pushFor(t, nodeID, res)
}

// pushFor installs a new snapshot of resources for node id.
func (cp *controlPlane) pushFor(t *testing.T, id string, res map[resource.Type][]types.Resource) {
	t.Helper()
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.version++
	snap, err := cache.NewSnapshot(fmt.Sprint(cp.version), res)
	if err != nil {
		t.Fatalf("new snapshot: %v", err)
	}
	if err := cp.cache.SetSnapshot(context.Background(), id, snap); err != nil {
		t.Fatalf("set snapshot: %v", err)
	}
}

// freePort finds a free port below the kernel's ephemeral range (10000 to
// 20000), so that no outgoing connection of a concurrently running test
// takes it before the proxy under test binds it from its listener config.
func freePort(t *testing.T) int {
	t.Helper()
	start := rand.IntN(10000)
	for i := range 10000 {
		p := 10000 + (start+i)%10000
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		ln.Close()
		return p
	}
	t.Fatal("no free port between 10000 and 20000")
	return 0
}

// backend is a real upstream HTTP server that names itself in its answers.
type backend struct {
	name string
	addr string
	srv  *http.Server
}

func startBackend(t *testing.T, name string, h http.HandlerFunc) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, addr: ln.Addr().String()}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("x-backend", name)
			w.Header().Set("x-seen-path", r.URL.RequestURI())
			w.Header().Set("x-seen-host", r.Host)
			w.Header().Set("x-seen-attempt", r.Header.Get("x-envoy-attempt-count"))
			w.Header().Set("x-seen-request-id", r.Header.Get("x-request-id"))
			w.Header().Set("x-seen-added", r.Header.Get("x-added"))
			_, _ = io.Copy(io.Discard, r.Body)
			_, _ = io.WriteString(w, name)
		}
	}
	b.srv = &http.Server{Handler: h}
	go func() { _ = b.srv.Serve(ln) }()
	t.Cleanup(func() { _ = b.srv.Close() })
	return b
}

func port(addr string) uint32 {
	_, p, _ := net.SplitHostPort(addr)
	var n uint32
	fmt.Sscan(p, &n)
	return n
}

func socketAddr(ip string, p uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: p}}}}
}

func anyOf(t *testing.T, m types.Resource) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}
}

// httpListener is an Istio-shaped listener with an HCM using RDS over ADS.
func httpListener(t *testing.T, name string, p int, rds string) *listenerv3.Listener {
	t.Helper()
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix:     name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads(), RouteConfigName: rds}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &routerv3.Router{})}}},
	}
	return &listenerv3.Listener{
		Name:    name,
		Address: socketAddr("127.0.0.1", uint32(p)),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, hcm)}}}}},
	}
}

func edsCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads(), ServiceName: name},
		ConnectTimeout:       durationpb.New(time.Second),
	}
}

func cla(name string, addrs ...string) *endpointv3.ClusterLoadAssignment {
	var eps []*endpointv3.LbEndpoint
	for _, a := range addrs {
		host, _, _ := net.SplitHostPort(a)
		eps = append(eps, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
			Endpoint: &endpointv3.Endpoint{Address: socketAddr(host, port(a))}}})
	}
	return &endpointv3.ClusterLoadAssignment{ClusterName: name,
		Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: eps}}}
}

func routeTo(prefix, cluster string) *routev3.Route {
	return &routev3.Route{
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}},
	}
}

// syncBuffer collects access log lines safely.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runningProxy is a proxy.Proxy running against a control plane.
type runningProxy struct {
	p    *proxy.Proxy
	log  *syncBuffer
	stop func()
}

func startProxy(t *testing.T, cpAddr string, sotw bool) *runningProxy {
	t.Helper()
	return startProxyAs(t, cpAddr, sotw, nodeID, "json")
}

// startProxyAs runs a proxy with node id and access log format.
func startProxyAs(t *testing.T, cpAddr string, sotw bool, id, accessLog string, opts ...func(*proxy.Config)) *runningProxy {
	t.Helper()
	buf, logs := &syncBuffer{}, &syncBuffer{}
	cfg := proxy.Config{
		Logger:          slog.New(slog.NewTextHandler(logs, nil)),
		Discovery:       cpAddr,
		InsecureXDS:     true,
		Node:            xdsclient.NodeInfo{ID: id, Namespace: "default", Workload: "test", Labels: map[string]string{"app": "test", "version": "v1"}, IPs: []string{"127.0.0.1"}},
		AdminAddress:    "127.0.0.1:0",
		AccessLog:       accessLog,
		AccessLogWriter: buf,
		DrainDuration:   time.Second,
		ForceSotW:       sotw,
		XDSBackoffBase:  50 * time.Millisecond,
	}
	for _, o := range opts {
		o(&cfg)
	}
	p := proxy.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	rp := &runningProxy{p: p, log: buf}
	var once sync.Once
	rp.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("proxy run: %v", err)
			}
		})
	}
	t.Cleanup(rp.stop)
	waitReady(t, p, logs)
	return rp
}

// waitReady waits for p to have its configuration and identity, and fails
// with the proxy's own log (a NACK says why) if it does not within a minute.
func waitReady(t *testing.T, p *proxy.Proxy, logs *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !p.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("proxy not ready after a minute; its log:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// get sends a request through the proxy listener at addr with Host host.
func get(t *testing.T, client *http.Client, addr, host, path string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, strings.TrimSpace(string(b))
}

package proxy_test

import (
	"net"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// env is a control plane and one proxy with arbitrary resources.
type env struct {
	cp  *controlPlane
	px  *runningProxy
	res map[resource.Type][]types.Resource
}

// newEnv pushes res and starts a proxy on it.
func newEnv(t *testing.T, res map[resource.Type][]types.Resource) *env {
	t.Helper()
	e := &env{cp: startControlPlane(t, ""), res: res}
	e.cp.push(t, res)
	e.px = startProxy(t, e.cp.addr, false)
	return e
}

func (e *env) admin(t *testing.T, path string) string {
	t.Helper()
	return httpGet(t, "http://"+e.px.p.AdminAddr()+path)
}

// listenerOf builds a listener; bind false makes it a virtual listener.
func listenerOf(t *testing.T, name, ip string, p int, bind bool, filter *listenerv3.Filter) *listenerv3.Listener {
	l := &listenerv3.Listener{Name: name, Address: socketAddr(ip, uint32(p)),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{filter}}}}
	if !bind {
		l.BindToPort = wrapperspb.Bool(false)
	}
	return l
}

// hcmFilter is an HCM with RDS rds and the named http filters before the router.
func hcmFilter(t *testing.T, rds string, filters ...string) *listenerv3.Filter {
	var hf []*hcmv3.HttpFilter
	for _, f := range filters {
		switch f {
		case "cors":
			hf = append(hf, &hcmv3.HttpFilter{Name: "envoy.filters.http.cors",
				ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &corsv3.Cors{})}})
		case "fault":
			hf = append(hf, &hcmv3.HttpFilter{Name: "envoy.filters.http.fault",
				ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &faultv3.HTTPFault{})}})
		}
	}
	hf = append(hf, &hcmv3.HttpFilter{Name: "envoy.filters.http.router",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &routerv3.Router{})}})
	hcm := &hcmv3.HttpConnectionManager{StatPrefix: "test",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads(), RouteConfigName: rds}},
		HttpFilters:    hf}
	return &listenerv3.Filter{Name: "envoy.filters.network.http_connection_manager",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, hcm)}}
}

func tcpFilter(t *testing.T, cluster string) *listenerv3.Filter {
	tp := &tcpproxyv3.TcpProxy{StatPrefix: "tcp", ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster}}
	return &listenerv3.Filter{Name: "envoy.filters.network.tcp_proxy",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, tp)}}
}

// routeConfig is one virtual host (domains *) with routes.
func routeConfig(name string, routes ...*routev3.Route) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{{Name: name, Domains: []string{"*"}, Routes: routes}}}
}

// istioMeta is the endpoint metadata the generators write (docs/xds.md).
func istioMeta(workload, ns, sa string, labels map[string]any) *corev3.Metadata {
	f := map[string]any{"workload": workload, "namespace": ns, "labels": labels}
	if sa != "" {
		f["service_account"] = sa
	}
	st, _ := structpb.NewStruct(f)
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": st}}
}

func claMeta(name string, md *corev3.Metadata, addrs ...string) *endpointv3.ClusterLoadAssignment {
	c := cla(name, addrs...)
	for _, ep := range c.Endpoints[0].LbEndpoints {
		ep.Metadata = md
	}
	return c
}

func clusterWith(name string, mut func(*clusterv3.Cluster)) *clusterv3.Cluster {
	c := edsCluster(name)
	if mut != nil {
		mut(c)
	}
	return c
}

func resources(ls []types.Resource, rs []types.Resource, cs []types.Resource, es []types.Resource) map[resource.Type][]types.Resource {
	return map[resource.Type][]types.Resource{resource.ListenerType: ls, resource.RouteType: rs,
		resource.ClusterType: cs, resource.EndpointType: es}
}

func hostPort(p int) string { return "127.0.0.1:" + itoa(p) }

// waitMetric polls /stats/prometheus until it holds every want.
func (e *env) waitMetric(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		body := e.admin(t, "/stats/prometheus")
		missing := ""
		for _, w := range want {
			if !strings.Contains(body, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/stats/prometheus lacks %q:\n%s", missing, truncate(body))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func dialTCP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

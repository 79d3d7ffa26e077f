package proxy_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	stats "istio.io/api/envoy/extensions/stats"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// hcmWithStats is hcmFilter(rds) with an istio.stats filter before the router.
func hcmWithStats(t *testing.T, rds string, cfg *stats.PluginConfig) *listenerv3.Filter {
	f := hcmFilter(t, rds)
	hcm := &hcmv3.HttpConnectionManager{}
	if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
		t.Fatal(err)
	}
	hcm.HttpFilters = append([]*hcmv3.HttpFilter{{Name: "istio.stats", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, cfg)}}}, hcm.HttpFilters...)
	f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, hcm)}
	return f
}

// metricLines are the lines of a metric family in the admin's exposition.
func metricLines(body, prefix string) []string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// TestIstioStatsOverrides: an HCM's istio.stats config (what the Telemetry
// API's metrics overrides become) adds a tag from a CEL expression, removes
// a standard tag, and drops a metric, in what /stats/prometheus shows.
func TestIstioStatsOverrides(t *testing.T) {
	bk := startBackend(t, "app", nil)
	lp := freePort(t)
	cfg := &stats.PluginConfig{Metrics: []*stats.MetricConfig{
		{Name: "requests_total", Dimensions: map[string]string{"request_host": "request.host", "user": "request.headers['x-user']"},
			TagsToRemove: []string{"source_principal"}},
		{Name: "request_bytes", Drop: true},
	}}
	e := newEnv(t, resources(
		[]types.Resource{listenerOf(t, "out", "127.0.0.1", lp, true, hcmWithStats(t, "80", cfg))},
		[]types.Resource{routeConfig("80", routeTo("/", "app"))},
		[]types.Resource{edsCluster("app")}, []types.Resource{cla("app", bk.addr)}))
	client := &http.Client{}
	defer client.CloseIdleConnections()
	if resp, body := get(t, client, hostPort(lp), "app.example:80", "/", map[string]string{"x-user": "jason"}); resp.StatusCode != 200 || body != "app" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	e.waitMetric(t, `istio_requests_total{`, `request_host="app.example:80"`)
	body := e.admin(t, "/stats/prometheus")
	reqs := metricLines(body, "istio_requests_total{")
	if len(reqs) != 1 || !strings.Contains(reqs[0], `request_host="app.example:80"`) || !strings.Contains(reqs[0], `user="jason"`) ||
		strings.Contains(reqs[0], "source_principal=") || !strings.Contains(reqs[0], `response_code="200"`) || !strings.HasSuffix(reqs[0], " 1") {
		t.Errorf("istio_requests_total: %q; want one series with request_host and user, no source_principal", reqs)
	}
	if got := metricLines(body, "istio_request_bytes_"); len(got) != 0 {
		t.Errorf("dropped istio_request_bytes is exposed: %q", got[0])
	}
	// Untouched metrics keep the standard tags.
	if got := metricLines(body, "istio_request_duration_milliseconds_count{"); len(got) != 1 || !strings.Contains(got[0], "source_principal=") {
		t.Errorf("istio_request_duration_milliseconds_count: %q; want the standard series", got)
	}
}

// TestIstioStatsRejected: tag expressions that are not CEL over Envoy's
// attributes, and metrics Bowline does not record, are NACKed with the field.
func TestIstioStatsRejected(t *testing.T) {
	cases := []struct {
		name string
		cfg  *stats.PluginConfig
		want string
	}{
		{"unknown attribute", &stats.PluginConfig{Metrics: []*stats.MetricConfig{{Dimensions: map[string]string{"x": "requst.host"}}}},
			`metrics[0].dimensions[x]: "requst.host": ERROR: <input>:1:1: undeclared reference to 'requst'`},
		{"not a string", &stats.PluginConfig{Metrics: []*stats.MetricConfig{{Dimensions: map[string]string{"code": "response.code + 1"}}}},
			`want string`},
		{"unknown metric", &stats.PluginConfig{Metrics: []*stats.MetricConfig{{Name: "my_metric", Drop: true}}},
			`metrics[0].name: "my_metric" is not a standard metric Bowline records`},
		{"custom definitions", &stats.PluginConfig{Definitions: []*stats.MetricDefinition{{Name: "x", Value: "1"}}},
			`definitions`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := xdsconfig.UnmarshalListener(listenerOf(t, "out", "127.0.0.1", 15001, true, hcmWithStats(t, "80", c.cfg)))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("NACK %v, want it to contain %q", err, c.want)
			}
		})
	}
}

// TestIstioStatsTCPOverrides: the istio.stats network filter before a
// tcp_proxy (what the Telemetry API's overrides of the TCP metrics become)
// adds a tag from a CEL expression over the connection's attributes,
// removes a standard one, and drops a metric, in /stats/prometheus; one
// before an HCM is NACKed.
func TestIstioStatsTCPOverrides(t *testing.T) {
	up := echoServer(t)
	lp := freePort(t)
	const cluster = "outbound|3306||db.default.svc.cluster.local"
	cfg := &stats.PluginConfig{Metrics: []*stats.MetricConfig{
		{Name: "tcp_connections_opened_total", Dimensions: map[string]string{"dst_port": "string(destination.port)", "peer": "upstream.address"},
			TagsToRemove: []string{"destination_principal"}},
		{Name: "tcp_received_bytes_total", Drop: true},
		// An HTTP metric's override leaves the TCP metrics alone.
		{Name: "requests_total", Drop: true},
	}}
	statsFilter := &listenerv3.Filter{Name: "istio.stats", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, cfg)}}
	l := listenerOf(t, "tcp", "127.0.0.1", lp, true, tcpFilter(t, cluster))
	l.FilterChains[0].Filters = append([]*listenerv3.Filter{statsFilter}, l.FilterChains[0].Filters...)
	e := newEnv(t, resources([]types.Resource{l}, nil, []types.Resource{edsCluster(cluster)},
		[]types.Resource{claMeta(cluster, istioMeta("db-v1", "default", "db", map[string]any{"app": "db", "version": "v1"}), up)}))
	c := dialTCP(t, hostPort(lp))
	if _, err := io.WriteString(c, "ping"); err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).CloseWrite()
	if got, err := io.ReadAll(c); err != nil || string(got) != "echo:ping" {
		t.Fatalf("echo %q %v", got, err)
	}
	c.Close()
	e.waitMetric(t, "istio_tcp_connections_closed_total{", `dst_port="`+itoa(lp)+`"`)
	body := e.admin(t, "/stats/prometheus")
	opened := metricLines(body, "istio_tcp_connections_opened_total{")
	if len(opened) != 1 || !strings.Contains(opened[0], `dst_port="`+itoa(lp)+`"`) || !strings.Contains(opened[0], `peer="`+up+`"`) ||
		strings.Contains(opened[0], "destination_principal=") || !strings.Contains(opened[0], `destination_app="db"`) || !strings.HasSuffix(opened[0], " 1") {
		t.Errorf("istio_tcp_connections_opened_total: %q; want one series with dst_port and peer, no destination_principal", opened)
	}
	if got := metricLines(body, "istio_tcp_received_bytes_total"); len(got) != 0 {
		t.Errorf("dropped istio_tcp_received_bytes_total is exposed: %q", got)
	}
	if got := metricLines(body, "istio_tcp_sent_bytes_total{"); len(got) != 1 || !strings.Contains(got[0], "destination_principal=") || !strings.HasSuffix(got[0], " 9") {
		t.Errorf("istio_tcp_sent_bytes_total: %q; want the standard series with 9 bytes", got)
	}

	t.Run("before an HCM", func(t *testing.T) {
		l := listenerOf(t, "out", "127.0.0.1", 15001, true, hcmFilter(t, "80"))
		l.FilterChains[0].Filters = append([]*listenerv3.Filter{statsFilter}, l.FilterChains[0].Filters...)
		_, err := xdsconfig.UnmarshalListener(l)
		if err == nil || !strings.Contains(err.Error(), "the istio.stats network filter records TCP metrics and precedes a tcp_proxy only") {
			t.Errorf("NACK %v", err)
		}
	})
}

// TestIstioStatsTCPDestination: destination.* in a TCP tag expression is
// where the connection was going, not the proxy's socket: a CONNECT through
// the explicit proxy port to a TCP service port tags destination.port with
// the service port (the socket's local port is the proxy's).
func TestIstioStatsTCPDestination(t *testing.T) {
	up := echoServer(t)
	lp, tport := freePort(t), freePort(t)
	const cluster = "outbound|3306||db.default.svc.cluster.local"
	cfg := &stats.PluginConfig{Metrics: []*stats.MetricConfig{
		{Name: "tcp_connections_opened_total", Dimensions: map[string]string{"dst_port": "string(destination.port)"}},
	}}
	statsFilter := &listenerv3.Filter{Name: "istio.stats", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, cfg)}}
	tl := listenerOf(t, "0.0.0.0_"+itoa(tport), "0.0.0.0", tport, false, tcpFilter(t, cluster))
	tl.FilterChains[0].Filters = append([]*listenerv3.Filter{statsFilter}, tl.FilterChains[0].Filters...)
	e := newEnv(t, resources(
		[]types.Resource{listenerOf(t, "outbound_http_proxy", "127.0.0.1", lp, true, hcmFilter(t, "outbound_http_proxy")), tl},
		[]types.Resource{&routev3.RouteConfiguration{Name: "outbound_http_proxy"}},
		[]types.Resource{edsCluster(cluster)},
		[]types.Resource{cla(cluster, up)}))
	c := dialTCP(t, hostPort(lp))
	defer c.Close()
	_, _ = io.WriteString(c, "CONNECT db:"+itoa(tport)+" HTTP/1.1\r\nHost: db:"+itoa(tport)+"\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	_, _ = io.WriteString(c, "ping")
	_ = c.(*net.TCPConn).CloseWrite()
	if got, _ := io.ReadAll(br); string(got) != "echo:ping" {
		t.Fatalf("tunnel got %q", got)
	}
	e.waitMetric(t, "istio_tcp_connections_opened_total{", `dst_port="`+itoa(tport)+`"`)
	opened := metricLines(e.admin(t, "/stats/prometheus"), "istio_tcp_connections_opened_total{")
	if len(opened) != 1 || strings.Contains(opened[0], `dst_port="`+itoa(lp)+`"`) {
		t.Errorf("istio_tcp_connections_opened_total: %q; want one series with dst_port %d (the CONNECT's), not the proxy port %d", opened, tport, lp)
	}
}

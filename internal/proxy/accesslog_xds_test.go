package proxy_test

import (
	"net/http"
	"strings"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	celfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestAccessLogFromXDS: an HCM's access_log (Envoy's file logger, as istiod
// builds it from Telemetry accessLogging) replaces the proxy's own access
// log: its CEL filter drops 2xx lines, and /dev/null turns logging off.
func TestAccessLogFromXDS(t *testing.T) {
	bk := startBackend(t, "app", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	cp := startControlPlane(t, "127.0.0.1:0")
	p := freePort(t)
	push := func(path, filter, version string) {
		js, _ := structpb.NewStruct(map[string]any{"code": "%RESPONSE_CODE%", "id": "%REQ(X-REQUEST-ID)%", "flags": "%RESPONSE_FLAGS%", "up": "%UPSTREAM_CLUSTER%"})
		fl := &filev3.FileAccessLog{Path: path, AccessLogFormat: &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
			Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: js}}}}
		al := &accesslogv3.AccessLog{Name: "envoy.access_loggers.file", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: anyOf(t, fl)}}
		if filter != "" {
			al.Filter = &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ExtensionFilter{ExtensionFilter: &accesslogv3.ExtensionFilter{
				Name: "envoy.access_loggers.extension_filters.cel", ConfigType: &accesslogv3.ExtensionFilter_TypedConfig{
					TypedConfig: anyOf(t, &celfilterv3.ExpressionFilter{Expression: filter})}}}}
		}
		hcm := &hcmv3.HttpConnectionManager{StatPrefix: "out",
			RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads(), RouteConfigName: "r"}},
			HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router",
				ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &routerv3.Router{})}}},
			AccessLog: []*accesslogv3.AccessLog{al}}
		route := routeTo("/", "app")
		route.ResponseHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-config", Value: version}}}
		cp.push(t, map[resource.Type][]types.Resource{
			resource.ListenerType: {&listenerv3.Listener{Name: "out", Address: socketAddr("127.0.0.1", uint32(p)),
				FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager",
					ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, hcm)}}}}}}},
			resource.RouteType: {&routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "app", Domains: []string{"*"},
				Routes: []*routev3.Route{route}}}}},
			resource.ClusterType:  {edsCluster("app")},
			resource.EndpointType: {cla("app", bk.addr)},
		})
	}
	push("/dev/stdout", "response.code >= 400", "1")
	rp := startProxy(t, cp.addr, false) // its own access log is JSON to the same buffer
	addr := "127.0.0.1:" + itoa(p)
	client := &http.Client{}
	send := func(path string) string {
		resp, _ := get(t, client, addr, "app", path, map[string]string{"x-request-id": "rid" + strings.ReplaceAll(path, "/", "-")})
		resp.Body.Close()
		return resp.Header.Get("x-config")
	}
	waitFor(t, "config 1", func() bool { return send("/warmup") == "1" })
	send("/ok")
	send("/fail")
	waitFor(t, "the 500 line", func() bool { return strings.Contains(rp.log.String(), "rid-fail") })
	// The line is the log_format's JSON, rendered as Envoy renders it.
	if want := `{"code":"500","flags":"-","id":"rid-fail","up":"app"}`; !strings.Contains(rp.log.String(), want+"\n") {
		t.Errorf("no line %s in:\n%s", want, rp.log.String())
	}
	if strings.Contains(rp.log.String(), "rid-ok") || strings.Contains(rp.log.String(), "rid-warmup") {
		t.Errorf("the filter response.code >= 400 let a 200 through:\n%s", rp.log.String())
	}

	// /dev/null: nothing is logged, though the proxy's own log is on.
	push("/dev/null", "", "2")
	waitFor(t, "config 2", func() bool { return send("/warmup2") == "2" })
	send("/fail-off")
	push("/dev/stdout", "", "3")
	waitFor(t, "config 3", func() bool { return send("/after") == "3" })
	waitFor(t, "the line after", func() bool { return strings.Contains(rp.log.String(), "rid-after") })
	if strings.Contains(rp.log.String(), "rid-fail-off") {
		t.Errorf("a request under /dev/null was logged:\n%s", rp.log.String())
	}
}

// TestAccessLogTextFormat: a custom text log_format (MeshConfig
// envoyFileAccessLog logFormat.text) is rendered with Envoy's command
// operators; a value the request lacks is "-".
func TestAccessLogTextFormat(t *testing.T) {
	bk := startBackend(t, "app", nil)
	cp := startControlPlane(t, "127.0.0.1:0")
	p := freePort(t)
	fl := &filev3.FileAccessLog{Path: "/dev/stdout", AccessLogFormat: &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
		Format: &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
			Specifier: &corev3.DataSource_InlineString{InlineString: "%REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% user=%REQ(X-USER)% missing=%REQ(X-NONE)% ua=%REQ(USER-AGENT):4%\n"}}}}}}
	hcm := &hcmv3.HttpConnectionManager{StatPrefix: "out",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads(), RouteConfigName: "r"}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &routerv3.Router{})}}},
		AccessLog: []*accesslogv3.AccessLog{{Name: "envoy.access_loggers.file", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: anyOf(t, fl)}}}}
	cp.push(t, map[resource.Type][]types.Resource{
		resource.ListenerType: {&listenerv3.Listener{Name: "out", Address: socketAddr("127.0.0.1", uint32(p)),
			FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, hcm)}}}}}}},
		resource.RouteType: {&routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "app", Domains: []string{"*"},
			Routes: []*routev3.Route{routeTo("/", "app")}}}}},
		resource.ClusterType:  {edsCluster("app")},
		resource.EndpointType: {cla("app", bk.addr)},
	})
	rp := startProxy(t, cp.addr, false)
	client := &http.Client{}
	defer client.CloseIdleConnections()
	waitFor(t, "the line", func() bool {
		resp, _ := get(t, client, "127.0.0.1:"+itoa(p), "app", "/hello?x=1", map[string]string{"x-user": "jason", "user-agent": "curl/8"})
		resp.Body.Close()
		return strings.Contains(rp.log.String(), "GET /hello?x=1 200 user=jason missing=- ua=curl\n")
	})
}

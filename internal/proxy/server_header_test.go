package proxy_test

import (
	"net/http"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
)

// TestServerHeader: the HCM's server_name and server_header_transformation
// decide the server header of responses, as Envoy's (Istio sets
// istio-envoy on inbound sidecars and gateways; outbound keeps "envoy").
func TestServerHeader(t *testing.T) {
	bk := startBackend(t, "app", func(w http.ResponseWriter, r *http.Request) {
		if s := r.URL.Query().Get("server"); s != "" {
			w.Header().Set("server", s)
		}
		_, _ = w.Write([]byte("ok"))
	})
	for _, tc := range []struct {
		name      string
		server    string
		transform hcmv3.HttpConnectionManager_ServerHeaderTransformation
		path      string
		want      string
	}{
		{"default overwrites with envoy", "", hcmv3.HttpConnectionManager_OVERWRITE, "/?server=gunicorn", "envoy"},
		{"istio-envoy overwrites", "istio-envoy", hcmv3.HttpConnectionManager_OVERWRITE, "/?server=gunicorn", "istio-envoy"},
		{"append if absent keeps the app's", "istio-envoy", hcmv3.HttpConnectionManager_APPEND_IF_ABSENT, "/?server=gunicorn", "gunicorn"},
		{"append if absent adds", "istio-envoy", hcmv3.HttpConnectionManager_APPEND_IF_ABSENT, "/", "istio-envoy"},
		{"pass through", "istio-envoy", hcmv3.HttpConnectionManager_PASS_THROUGH, "/?server=gunicorn", "gunicorn"},
		{"pass through adds none", "istio-envoy", hcmv3.HttpConnectionManager_PASS_THROUGH, "/", ""},
		{"local reply", "istio-envoy", hcmv3.HttpConnectionManager_OVERWRITE, "/nothing-routes-here", "istio-envoy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lp := freePort(t)
			hcm := &hcmv3.HttpConnectionManager{StatPrefix: "test", ServerName: tc.server, ServerHeaderTransformation: tc.transform,
				RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads(), RouteConfigName: "r"}},
				HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router",
					ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &routerv3.Router{})}}}}
			filter := &listenerv3.Filter{Name: "envoy.filters.network.http_connection_manager",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, hcm)}}
			rc := routeConfig("r", routeTo("/", "up"))
			if tc.name == "local reply" {
				rc = routeConfig("r") // no route: 404 NR from the proxy itself
			}
			newEnv(t, resources([]types.Resource{listenerOf(t, "l", "127.0.0.1", lp, true, filter)},
				[]types.Resource{rc}, []types.Resource{edsCluster("up")}, []types.Resource{cla("up", bk.addr)}))
			client := &http.Client{}
			defer client.CloseIdleConnections()
			resp, _ := get(t, client, hostPort(lp), "app", tc.path, nil)
			if got := resp.Header.Get("server"); got != tc.want {
				t.Errorf("server header = %q, want %q (status %d)", got, tc.want, resp.StatusCode)
			}
		})
	}
}

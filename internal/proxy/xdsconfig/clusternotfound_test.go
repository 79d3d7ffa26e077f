package xdsconfig_test

import (
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// TestClusterNotFoundResponseCode: a route's answer for a cluster the
// snapshot lacks is 503 unless cluster_not_found_response_code says 404 or
// 500 (Gateway API routes ask for 500).
func TestClusterNotFoundResponseCode(t *testing.T) {
	for code, want := range map[routev3.RouteAction_ClusterNotFoundResponseCode]int{
		routev3.RouteAction_SERVICE_UNAVAILABLE:   503,
		routev3.RouteAction_NOT_FOUND:             404,
		routev3.RouteAction_INTERNAL_SERVER_ERROR: 500,
	} {
		rc, err := xdsconfig.UnmarshalRouteConfig(&routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{
			Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterNotFoundResponseCode: code,
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}}},
			}},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		if got := rc.VirtualHosts[0].Routes[0].Action.ClusterNotFoundStatus; got != want {
			t.Errorf("%v: status %d, want %d", code, got, want)
		}
	}
	_, err := xdsconfig.UnmarshalRouteConfig(&routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{
		Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterNotFoundResponseCode: 7, ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}}},
		}},
	}}})
	if err == nil || !strings.Contains(err.Error(), "cluster_not_found_response_code: unknown value 7") {
		t.Errorf("unknown code: %v", err)
	}
}

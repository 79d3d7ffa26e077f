package proxy_test

import (
	"io"
	"net"
	"net/http"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
)

// TestHealthyPanicThreshold: of three endpoints two are EDS-unhealthy
// (33% healthy). Under Envoy's default threshold (50%) the cluster is in
// panic and requests reach all three; with healthy_panic_threshold 0, as
// istiod sets it, only the healthy one answers.
func TestHealthyPanicThreshold(t *testing.T) {
	bks := []*backend{startBackend(t, "healthy", nil), startBackend(t, "unhealthy-1", nil), startBackend(t, "unhealthy-2", nil)}
	assignment := func(name string) *endpointv3.ClusterLoadAssignment {
		var eps []*endpointv3.LbEndpoint
		for i, b := range bks {
			host, _, _ := net.SplitHostPort(b.addr)
			st := corev3.HealthStatus_HEALTHY
			if i > 0 {
				st = corev3.HealthStatus_UNHEALTHY
			}
			eps = append(eps, &endpointv3.LbEndpoint{HealthStatus: st, HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
				Endpoint: &endpointv3.Endpoint{Address: socketAddr(host, port(b.addr))}}})
		}
		return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: eps}}}
	}
	noPanic := edsCluster("nopanic")
	noPanic.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: &typev3.Percent{Value: 0}}
	lp := freePort(t)
	newEnv(t, resources(
		[]types.Resource{listenerOf(t, "l", "127.0.0.1", lp, true, hcmFilter(t, "r"))},
		[]types.Resource{routeConfig("r", routeTo("/nopanic", "nopanic"), routeTo("/", "default"))},
		[]types.Resource{edsCluster("default"), noPanic},
		[]types.Resource{assignment("default"), assignment("nopanic")},
	))
	addr := hostPort(lp)
	answered := func(path string) map[string]int {
		seen := map[string]int{}
		for range 60 {
			resp, err := http.Get("http://" + addr + path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("%s: status %d %q", path, resp.StatusCode, b)
			}
			seen[string(b)]++
		}
		return seen
	}
	if got := answered("/"); len(got) != 3 {
		t.Errorf("default threshold: answered by %v, want all three endpoints (panic mode)", got)
	}
	if got := answered("/nopanic"); len(got) != 1 || got["healthy"] != 60 {
		t.Errorf("threshold 0: answered by %v, want only the healthy endpoint", got)
	}
}

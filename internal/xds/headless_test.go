package xds_test

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
	"github.com/bowline-mesh/bowline/internal/xds"
)

// A headless Kubernetes Service (clusterIP None: resolution NONE, its
// endpoints kept) is ORIGINAL_DST for a sidecar, and balanced over its
// endpoints (EDS) by a gateway, which has no original destination to pass
// the connection to.
func TestHeadlessServiceAtGatewayIsEDS(t *testing.T) {
	reg := registry.New(nil)
	ep := func(ip string) *registry.Endpoint {
		return &registry.Endpoint{Address: ip, Namespace: "default", Healthy: true, Ports: map[string]uint32{"http": 8080}}
	}
	reg.SetKubernetes([]*registry.Service{{Hostname: "db.default.svc.cluster.local", Namespace: "default", Name: "db",
		Resolution: registry.ResolutionNone, Ports: []registry.Port{{Name: "http", Number: 8080, Protocol: "HTTP"}},
		Endpoints: []*registry.Endpoint{ep("10.0.0.7"), ep("10.0.0.8")}}}, nil)
	snap := model.Build(nil, reg.View(), model.Options{})
	const name = "outbound|8080||db.default.svc.cluster.local"
	find := func(res xds.Resources) (*clusterv3.Cluster, *endpointv3.ClusterLoadAssignment) {
		var c *clusterv3.Cluster
		var la *endpointv3.ClusterLoadAssignment
		for _, r := range res.Clusters {
			if cc := r.(*clusterv3.Cluster); cc.GetName() == name {
				c = cc
			}
		}
		for _, r := range res.Endpoints {
			if l := r.(*endpointv3.ClusterLoadAssignment); l.GetClusterName() == name {
				la = l
			}
		}
		return c, la
	}
	side := &model.Proxy{ID: "sidecar~10.0.0.10~app.default~default.svc.cluster.local", Type: model.SidecarProxy, Namespace: "default",
		WorkloadName: "app", IPs: []string{"10.0.0.10"}}
	if c, _ := find(xds.Generate(snap, side)); c == nil || c.GetType() != clusterv3.Cluster_ORIGINAL_DST {
		t.Errorf("sidecar cluster %s: %v, want ORIGINAL_DST", name, c)
	}
	gw := &model.Proxy{ID: "router~10.0.0.2~gw.istio-system~istio-system.svc.cluster.local", Type: model.Router, Namespace: "istio-system",
		Labels: map[string]string{"istio": "ingressgateway"}, IPs: []string{"10.0.0.2"}}
	c, la := find(xds.Generate(snap, gw))
	if c == nil || c.GetType() != clusterv3.Cluster_EDS {
		t.Fatalf("gateway cluster %s: %v, want EDS", name, c)
	}
	n := 0
	for _, l := range la.GetEndpoints() {
		n += len(l.GetLbEndpoints())
	}
	if n != 2 {
		t.Errorf("gateway endpoints of %s: %d, want the service's 2", name, n)
	}
}

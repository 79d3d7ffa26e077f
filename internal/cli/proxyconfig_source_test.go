package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
	"github.com/bowline-mesh/bowline/internal/xds"
)

// TestProxyConfigNamesSources: the cluster and route tables name the
// DestinationRule and VirtualService each resource came from, as istioctl
// does, for what the generator makes of Istio's Bookinfo samples.
func TestProxyConfigNamesSources(t *testing.T) {
	var objs []*config.Object
	for _, f := range []string{"services.yaml", "destination-rule-all.yaml", "virtual-service-reviews-80-20.yaml"} {
		path := filepath.Join("..", "xds", "testdata", "bookinfo", f)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		res := config.Parse(path, data, config.ParseOptions{})
		if len(res.Problems) > 0 {
			t.Fatalf("%s: %v", path, res.Problems)
		}
		objs = append(objs, res.Objects...)
	}
	reg := registry.New(nil)
	reg.SetConfig(objs)
	snap := model.Build(objs, reg.View(), model.Options{})
	res := xds.Generate(snap, &model.Proxy{
		ID: "sidecar~10.0.0.10~productpage-v1.default~default.svc.cluster.local", Type: model.SidecarProxy,
		Namespace: "default", WorkloadName: "productpage-v1", Labels: map[string]string{"app": "productpage", "version": "v1"},
		IPs: []string{"10.0.0.10"},
	})

	var cs []*clusterv3.Cluster
	for _, r := range res.Clusters {
		cs = append(cs, r.(*clusterv3.Cluster))
	}
	var out bytes.Buffer
	if err := writeClusterSummary(&out, cs, clusterFilter{fqdn: "reviews.default.svc.cluster.local"}); err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(rows) != 5 { // header, the service's cluster, subsets v1..v3
		t.Fatalf("reviews clusters:\n%s", out.String())
	}
	for _, row := range rows[1:] {
		if f := strings.Fields(row); f[len(f)-1] != "reviews.default" {
			t.Errorf("cluster row names no DestinationRule reviews.default: %q", row)
		}
	}

	var rcs []*routev3.RouteConfiguration
	for _, r := range res.Routes {
		rcs = append(rcs, r.(*routev3.RouteConfiguration))
	}
	out.Reset()
	if err := writeRouteSummary(&out, rcs, "9080"); err != nil {
		t.Fatal(err)
	}
	var reviews, details string
	for _, row := range strings.Split(out.String(), "\n") {
		f := strings.Fields(row)
		switch {
		case len(f) < 2:
		case strings.HasPrefix(f[1], "reviews."):
			reviews = row
		case strings.HasPrefix(f[1], "details."):
			details = row
		}
	}
	if !strings.HasSuffix(strings.TrimSpace(reviews), "reviews.default") {
		t.Errorf("the reviews route names no VirtualService reviews.default: %q\n%s", reviews, out.String())
	}
	if details == "" || strings.HasSuffix(strings.TrimSpace(details), ".default") {
		t.Errorf("the details route (no VirtualService) should name none: %q\n%s", details, out.String())
	}
}

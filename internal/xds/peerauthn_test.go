package xds_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/xds"
)

// TestMTLSGolden generates, for PeerAuthentication modes, auto mTLS and
// DestinationRule tls settings, the inbound listeners, the outbound clusters
// and the EDS of ratings and reviews; every resource passes ValidateAll.
func TestMTLSGolden(t *testing.T) {
	twoPorts := *sidecar
	twoPorts.Inbound = []model.PortMapping{{Port: 9080, TargetPort: 19080}, {Port: 9000, TargetPort: 19000}}
	cases := []struct {
		name  string
		files []string
		proxy *model.Proxy
	}{
		{"strict", []string{svcs, "mtls/strict.yaml"}, sidecar},
		{"permissive", []string{svcs, "mtls/permissive.yaml"}, sidecar},
		{"disable", []string{svcs, "mtls/disable.yaml"}, sidecar},
		{"port-level", []string{svcs, "mtls/port-level.yaml"}, &twoPorts},
		{"auto-mtls", []string{svcs, "mtls/auto-mtls.yaml"}, sidecar},
		{"namespace-disable", []string{svcs, "mtls/namespace-disable.yaml"}, sidecar},
		{"dr-tls", []string{svcs, "mtls/dr-tls.yaml"}, sidecar},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := xds.Generate(snapshot(t, tc.files...), tc.proxy)
			validateAll(t, res)
			var out xds.Resources
			for _, l := range res.Listeners {
				if strings.HasPrefix(resourceName(l), "inbound|") {
					out.Listeners = append(out.Listeners, l)
				}
			}
			for _, c := range res.Clusters {
				if n := resourceName(c); strings.HasPrefix(n, "outbound|") && !strings.Contains(n, "|v") {
					out.Clusters = append(out.Clusters, c)
				}
			}
			for _, e := range res.Endpoints {
				if n := e.(interface{ GetClusterName() string }).GetClusterName(); n == "outbound|9080||ratings.default.svc.cluster.local" ||
					n == "outbound|9080||reviews.default.svc.cluster.local" {
					out.Endpoints = append(out.Endpoints, e)
				}
			}
			compareGolden(t, filepath.Join("testdata", "mtls", tc.name+".golden"), render(t, out))
		})
	}
}

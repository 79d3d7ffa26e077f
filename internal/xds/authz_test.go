package xds_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/xds"
)

// TestAuthzGolden generates the inbound listeners (and any cluster the
// security config adds) for a table of AuthorizationPolicy and
// RequestAuthentication shapes; every resource passes ValidateAll.
func TestAuthzGolden(t *testing.T) {
	withTCP := *sidecar
	withTCP.Inbound = []model.PortMapping{{Port: 9080, TargetPort: 19080}, {Port: 9000, TargetPort: 19000}}
	cases := []struct {
		name  string
		files []string
		proxy *model.Proxy
	}{
		{"allow-full-rule", []string{svcs, "authz/allow-full-rule.yaml"}, sidecar},
		{"deny-audit-allow", []string{svcs, "authz/deny-audit-allow.yaml"}, sidecar},
		{"custom", []string{svcs, "authz/custom.yaml"}, sidecar},
		{"allow-nothing", []string{svcs, "authz/allow-nothing.yaml"}, sidecar},
		{"allow-all", []string{svcs, "authz/allow-all.yaml"}, sidecar},
		{"not-applied", []string{svcs, "authz/not-applied.yaml"}, sidecar},
		{"jwt", []string{svcs, "authz/jwt.yaml"}, sidecar},
		{"tcp", []string{svcs, "authz/tcp.yaml"}, &withTCP},
		{"gateway", []string{svcs, "authz/gateway.yaml"}, router},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			snap := snapshot(t, tc.files...)
			res := xds.Generate(snap, tc.proxy)
			validateAll(t, res)
			base := xds.Generate(snapshot(t, svcs), tc.proxy)
			baseClusters := map[string]bool{}
			for _, c := range base.Clusters {
				baseClusters[resourceName(c)] = true
			}
			var out xds.Resources
			for _, l := range res.Listeners {
				if strings.HasPrefix(resourceName(l), "inbound|") || tc.proxy.Type == model.Router {
					out.Listeners = append(out.Listeners, l)
				}
			}
			if tc.proxy.Type == model.Router { // the claims routes
				out.Routes = res.Routes
			}
			for _, c := range res.Clusters {
				if !baseClusters[resourceName(c)] {
					out.Clusters = append(out.Clusters, c)
				}
			}
			compareGolden(t, filepath.Join("testdata", "authz", tc.name+".golden"), render(t, out))
		})
	}
}

func resourceName(r types.Resource) string {
	type named interface{ GetName() string }
	return r.(named).GetName()
}

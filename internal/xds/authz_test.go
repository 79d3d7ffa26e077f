package xds_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
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
		{"custom-grpc", []string{svcs, "authz/tcp-service.yaml", "authz/custom-providers.yaml", "authz/custom-grpc.yaml"}, &withTCP},
		{"custom-http", []string{svcs, "authz/tcp-service.yaml", "authz/custom-providers.yaml", "authz/custom-http.yaml"}, &withTCP},
		{"custom-two-providers", []string{svcs, "authz/custom-providers.yaml", "authz/custom-two-providers.yaml"}, sidecar},
		{"allow-nothing", []string{svcs, "authz/allow-nothing.yaml"}, sidecar},
		{"allow-all", []string{svcs, "authz/allow-all.yaml"}, sidecar},
		{"not-applied", []string{svcs, "authz/not-applied.yaml"}, sidecar},
		{"jwt", []string{svcs, "authz/jwt.yaml"}, sidecar},
		{"tcp", []string{svcs, "authz/tcp.yaml"}, &withTCP},
		{"gateway", []string{svcs, "authz/gateway.yaml"}, router},
		{"trust-domain-aliases", []string{svcs, "authz/trust-domain-aliases.yaml"}, sidecar},
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

// TestAuthzPortsRetarget: a sidecar listening on 20001 for a workload whose
// container port is 9080 (`bowline up` without --netns) gets RBAC port rules
// on 20001 for policies that name 9080, and rules naming other ports match
// nothing on that listener; the inbound cluster names the service served.
func TestAuthzPortsRetarget(t *testing.T) {
	objs := load(t, svcs, "authz/ports.yaml")
	reg := registry.New(nil)
	reg.SetConfig(objs)
	if err := reg.Register(registry.Workload{Name: "ratings-v1", Namespace: "default", Address: "127.0.0.1",
		Ports: map[string]uint32{"http": 20001}, ContainerPorts: map[string]uint32{"http": 9080},
		Labels: map[string]string{"app": "ratings", "version": "v1"}, ServiceAccount: "bookinfo-ratings", Healthy: true}); err != nil {
		t.Fatal(err)
	}
	snap := model.Build(objs, reg.View(), model.Options{})
	ratings := &model.Proxy{ID: "sidecar~127.0.0.1~ratings-v1.default~default.svc.cluster.local", Type: model.SidecarProxy,
		Namespace: "default", WorkloadName: "ratings-v1", ServiceAccount: "bookinfo-ratings",
		Labels: map[string]string{"app": "ratings", "version": "v1"}, IPs: []string{"127.0.0.1"},
		Inbound: []model.PortMapping{{Port: 20001, TargetPort: 20002}}}
	res := xds.Generate(snap, ratings)
	validateAll(t, res)
	var out xds.Resources
	for _, l := range res.Listeners {
		if strings.HasPrefix(resourceName(l), "inbound|") {
			out.Listeners = append(out.Listeners, l)
		}
	}
	for _, c := range res.Clusters {
		if strings.HasPrefix(resourceName(c), "inbound|") {
			out.Clusters = append(out.Clusters, c)
		}
	}
	compareGolden(t, filepath.Join("testdata", "authz", "ports.golden"), render(t, out))
}

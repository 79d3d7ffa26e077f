package xds_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
	"github.com/bowline-mesh/bowline/internal/xds"
)

// TestEnvoyFilterGolden applies each testdata/envoyfilter/NAME.yaml to
// Bookinfo and records what the patches changed: every resource that
// differs from the unpatched generation (whole), and the names of those
// added and removed.
func TestEnvoyFilterGolden(t *testing.T) {
	cases := []struct {
		name  string
		proxy *model.Proxy
	}{
		{"local-ratelimit", sidecar},
		{"global-ratelimit-gateway", router},
		{"http-filters", sidecar},
		{"listeners", sidecar},
		{"listener-filters", sidecar},
		{"routes", sidecar},
		{"clusters", sidecar},
		{"order", sidecar},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := xds.Generate(snapshot(t, svcs, drs, gw), tc.proxy)
			snap := snapshot(t, svcs, drs, gw, "envoyfilter/"+tc.name+".yaml")
			if p := snap.Problems(); len(p) > 0 {
				t.Fatalf("problems: %v", p)
			}
			patched := xds.Generate(snap, tc.proxy)
			validateAll(t, patched)
			cached := xds.GenerateCached(snap, tc.proxy, xds.NewCache())
			for typ, v := range patched.Versions {
				if cached.Versions[typ] != v {
					t.Errorf("%s: cached generation differs from Generate", typ)
				}
			}
			if again := xds.GenerateCached(snapshot(t, svcs, drs, gw), tc.proxy, xds.NewCache()); !equalVersions(again, base) {
				t.Errorf("patching changed the unpatched generation")
			}
			compareGolden(t, filepath.Join("testdata", "envoyfilter", tc.name+".golden"), renderChanges(t, base, patched))
		})
	}
}

func equalVersions(a, b xds.Resources) bool {
	for typ, v := range a.Versions {
		if b.Versions[typ] != v {
			return false
		}
	}
	return true
}

func renderChanges(t *testing.T, base, patched xds.Resources) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, part := range []struct {
		title      string
		base, next []types.Resource
	}{{"listener", base.Listeners, patched.Listeners}, {"route", base.Routes, patched.Routes},
		{"cluster", base.Clusters, patched.Clusters}, {"endpoints", base.Endpoints, patched.Endpoints}} {
		before, after := jsonByName(t, part.base), jsonByName(t, part.next)
		for _, name := range sortedKeys(before) {
			if _, ok := after[name]; !ok {
				fmt.Fprintf(&buf, "# removed %s %s\n", part.title, name)
			}
		}
		for _, name := range sortedKeys(after) {
			b, ok := before[name]
			switch {
			case !ok:
				fmt.Fprintf(&buf, "# added %s %s\n%s\n", part.title, name, after[name])
			case b != after[name]:
				fmt.Fprintf(&buf, "# changed %s %s\n%s\n", part.title, name, after[name])
			}
		}
	}
	if buf.Len() == 0 {
		buf.WriteString("# nothing changed\n")
	}
	return buf.Bytes()
}

func jsonByName(t *testing.T, rs []types.Resource) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, r := range rs {
		b, err := protojson.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		name, _ := v["name"].(string)
		if name == "" {
			name, _ = v["clusterName"].(string)
		}
		pretty, _ := json.MarshalIndent(v, "", "  ")
		out[name] = string(pretty)
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// inboundRouteConfig returns the inline route configuration of the
// sidecar's inbound HTTP listener.
func inboundRouteConfig(t *testing.T, res xds.Resources) *routev3.RouteConfiguration {
	t.Helper()
	for _, r := range res.Listeners {
		l := r.(*listenerv3.Listener)
		if l.GetTrafficDirection().String() != "INBOUND" {
			continue
		}
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				hcm := &hcmv3.HttpConnectionManager{}
				if f.GetTypedConfig().UnmarshalTo(hcm) == nil && hcm.GetRouteConfig() != nil {
					return hcm.GetRouteConfig()
				}
			}
		}
	}
	t.Fatal("no inbound HTTP listener")
	return nil
}

// TestEnvoyFilterUpPorts: under `bowline up` a sidecar listens on a free
// local port (20001) for the workload's container port 9080; the inbound
// names are still Istio's, so Istio's local rate limit sample (vhost
// inbound|http|9080) and a listener match on portNumber 9080 find it.
func TestEnvoyFilterUpPorts(t *testing.T) {
	const portMatch = `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: by-port, namespace: default}
spec:
  configPatches:
  - applyTo: NETWORK_FILTER
    match:
      context: SIDECAR_INBOUND
      listener:
        portNumber: 9080
        filterChain: {filter: {name: envoy.filters.network.http_connection_manager}}
    patch:
      operation: MERGE
      value:
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          server_name: by-port
`
	objs := append(load(t, svcs, "envoyfilter/local-ratelimit.yaml"), parse(t, "by-port.yaml", portMatch)...)
	reg := registry.New(nil)
	reg.SetConfig(objs)
	if err := reg.Register(registry.Workload{Name: "productpage-v1", Namespace: "default", Address: "127.0.0.1",
		Ports: map[string]uint32{"http": 20001}, ContainerPorts: map[string]uint32{"http": 9080},
		Labels: map[string]string{"app": "productpage", "version": "v1"}, ServiceAccount: "bookinfo-productpage", Healthy: true}); err != nil {
		t.Fatal(err)
	}
	snap := model.Build(objs, reg.View(), model.Options{})
	p := &model.Proxy{ID: "sidecar~127.0.0.1~productpage-v1.default~default.svc.cluster.local", Type: model.SidecarProxy,
		Namespace: "default", WorkloadName: "productpage-v1", ServiceAccount: "bookinfo-productpage",
		Labels: map[string]string{"app": "productpage", "version": "v1"}, IPs: []string{"127.0.0.1"},
		Inbound: []model.PortMapping{{Port: 20001, TargetPort: 20002}}}
	res := xds.Generate(snap, p)
	validateAll(t, res)
	rc := inboundRouteConfig(t, res)
	if rc.GetName() != "inbound|9080||" || rc.GetVirtualHosts()[0].GetName() != "inbound|http|9080" {
		t.Fatalf("inbound route %q, vhost %q; want Istio's inbound|9080|| and inbound|http|9080", rc.GetName(), rc.GetVirtualHosts()[0].GetName())
	}
	r := rc.GetVirtualHosts()[0].GetRoutes()[0]
	if r.GetTypedPerFilterConfig()["envoy.filters.http.local_ratelimit"] == nil || len(r.GetRoute().GetRateLimits()) != 2 {
		t.Errorf("route %s: the sample's HTTP_ROUTE MERGE did not apply: %v", r.GetName(), r)
	}
	for _, l := range res.Listeners {
		l := l.(*listenerv3.Listener)
		if l.GetName() != "inbound|20001" {
			continue
		}
		for _, fc := range l.GetFilterChains() {
			hcm := &hcmv3.HttpConnectionManager{}
			if err := fc.GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
				t.Fatal(err)
			}
			if hcm.GetServerName() != "by-port" || hcm.GetHttpFilters()[0].GetName() != "envoy.filters.http.local_ratelimit" {
				t.Errorf("chain %v: server %q, first filter %q; want by-port and the local rate limit",
					fc.GetFilterChainMatch(), hcm.GetServerName(), hcm.GetHttpFilters()[0].GetName())
			}
		}
	}
}

func parse(t *testing.T, name, doc string) []*config.Object {
	t.Helper()
	res := config.Parse(name, []byte(doc), config.ParseOptions{})
	if len(res.Problems) > 0 {
		t.Fatalf("%s: %v", name, res.Problems)
	}
	return res.Objects
}

// TestEnvoyFilterKeepsSecrets: a gateway with credentialName servers that
// an EnvoyFilter patches still gets its SDS secrets and load assignments,
// those of the unpatched generation.
func TestEnvoyFilterKeepsSecrets(t *testing.T) {
	base := xds.Generate(snapshot(t, svcs, drs, "gateway/tls.yaml"), router)
	snap := snapshot(t, svcs, drs, "gateway/tls.yaml", "envoyfilter/global-ratelimit-gateway.yaml")
	if snap.EnvoyFiltersFor(router) == nil {
		t.Fatal("no EnvoyFilter applies to the router: the case tests nothing")
	}
	if len(base.Secrets) == 0 {
		t.Fatal("the unpatched gateway has no secrets: the case tests nothing")
	}
	patched := xds.Generate(snap, router)
	for _, typ := range []string{resourcev3.SecretType, resourcev3.EndpointType} {
		w, g := base.Wire[typ], patched.Wire[typ]
		if len(g) != len(w) || patched.Versions[typ] != base.Versions[typ] {
			t.Fatalf("%s: %d resources (version %s), want the unpatched %d (version %s)", typ, len(g), patched.Versions[typ], len(w), base.Versions[typ])
		}
		for i := range w {
			if !bytes.Equal(g[i].GetValue(), w[i].GetValue()) {
				t.Errorf("%s[%d] differs from the unpatched generation", typ, i)
			}
		}
	}
}

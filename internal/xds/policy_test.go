package xds_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
	"github.com/bowline-mesh/bowline/internal/xds"
)

// TestRetryBudget: a DestinationRule retryBudget becomes the circuit
// breaker's retry_budget as istiod writes it — budget_percent 20 and
// min_retry_concurrency 3 where unset, budget_interval as given — and a
// subset's retryBudget replaces the top level's for that subset.
func TestRetryBudget(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", svcs))
	if err != nil {
		t.Fatal(err)
	}
	objs := append(parse(t, svcs, string(data)), parse(t, "dr.yaml", `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  trafficPolicy:
    retryBudget: {}
  subsets:
  - {name: v1, labels: {version: v1}}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      retryBudget: {percent: 50, minRetryConcurrency: 1, budgetInterval: 2s}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    connectionPool: {http: {maxRetries: 7}}
`)...)
	reg := registry.New(nil)
	reg.SetConfig(objs)
	res := xds.Generate(model.Build(objs, reg.View(), model.Options{}), sidecar)
	budgets := map[string]string{}
	for _, r := range res.Clusters {
		c := r.(*clusterv3.Cluster)
		th := c.GetCircuitBreakers().GetThresholds()
		if len(th) == 0 {
			continue
		}
		b, _ := protojson.Marshal(th[0].GetRetryBudget())
		budgets[c.GetName()] = string(b)
	}
	for name, want := range map[string]string{
		"outbound|9080||ratings.default.svc.cluster.local":   `{"budgetPercent":{"value":20},"minRetryConcurrency":3}`,
		"outbound|9080|v1|ratings.default.svc.cluster.local": `{"budgetPercent":{"value":20},"minRetryConcurrency":3}`,
		"outbound|9080|v2|ratings.default.svc.cluster.local": `{"budgetPercent":{"value":50},"budgetInterval":"2s","minRetryConcurrency":1}`,
		"outbound|9080||reviews.default.svc.cluster.local":   `{}`, // max_retries only
	} {
		got, ok := budgets[name]
		if !ok {
			t.Errorf("no cluster %s", name)
			continue
		}
		if compactJSON(t, got) != compactJSON(t, want) {
			t.Errorf("%s: retry_budget %s, want %s", name, got, want)
		}
	}
}

// compactJSON is s re-encoded without the spaces protojson may add.
func compactJSON(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestPanicThresholdAndUnhealthyEndpoints: as istiod, every service cluster
// gets healthy_panic_threshold 0 (unhealthy endpoints are sent, marked
// UNHEALTHY, and Envoy's default 50% would route to them), or
// outlierDetection's minHealthPercent; with minHealthPercent above 0 the
// unhealthy endpoints are left out of that cluster's load assignment.
func TestPanicThresholdAndUnhealthyEndpoints(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", svcs))
	if err != nil {
		t.Fatal(err)
	}
	objs := append(parse(t, svcs, string(data)), parse(t, "dr.yaml", `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      outlierDetection: {consecutive5xxErrors: 3, minHealthPercent: 40}
  - name: v2
    labels: {version: v1}
    trafficPolicy:
      outlierDetection: {consecutive5xxErrors: 3}
`)...)
	reg := registry.New(nil)
	reg.SetConfig(objs)
	if err := reg.Register(registry.Workload{Name: "ratings-v1-down", Namespace: "default", Address: "10.0.0.99",
		Ports: map[string]uint32{"http": 19080}, Labels: map[string]string{"app": "ratings", "version": "v1"},
		ServiceAccount: "bookinfo-ratings", Healthy: false}); err != nil {
		t.Fatal(err)
	}
	res := xds.Generate(model.Build(objs, reg.View(), model.Options{}), sidecar)
	panics := map[string]string{}
	for _, r := range res.Clusters {
		c := r.(*clusterv3.Cluster)
		if t := c.GetCommonLbConfig().GetHealthyPanicThreshold(); t != nil {
			panics[c.GetName()] = strconv.FormatFloat(t.GetValue(), 'g', -1, 64)
		}
	}
	endpoints := map[string]string{}
	for _, r := range res.Endpoints {
		cla := r.(*endpointv3.ClusterLoadAssignment)
		var eps []string
		for _, l := range cla.GetEndpoints() {
			for _, e := range l.GetLbEndpoints() {
				eps = append(eps, e.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()+" "+e.GetHealthStatus().String())
			}
		}
		sort.Strings(eps)
		endpoints[cla.GetClusterName()] = strings.Join(eps, ", ")
	}
	for _, tc := range []struct{ cluster, panic, endpoints string }{
		{"outbound|9080||ratings.default.svc.cluster.local", "0", "10.0.0.15 HEALTHY, 10.0.0.99 UNHEALTHY"},
		{"outbound|9080|v1|ratings.default.svc.cluster.local", "40", "10.0.0.15 HEALTHY"},
		{"outbound|9080|v2|ratings.default.svc.cluster.local", "0", "10.0.0.15 HEALTHY, 10.0.0.99 UNHEALTHY"},
		{"outbound|9080||reviews.default.svc.cluster.local", "0", ""},
	} {
		if got, ok := panics[tc.cluster]; !ok || got != tc.panic {
			t.Errorf("%s: healthy_panic_threshold %q (set %v), want %s", tc.cluster, got, ok, tc.panic)
		}
		if tc.endpoints != "" && endpoints[tc.cluster] != tc.endpoints {
			t.Errorf("%s: endpoints %q, want %q", tc.cluster, endpoints[tc.cluster], tc.endpoints)
		}
	}
}

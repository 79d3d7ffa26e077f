package describe_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/describe"
	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// update rewrites golden files: go test ./internal/describe -update
var update = flag.Bool("update", false, "rewrite testdata/*.golden files")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/describe -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test ./internal/describe -update rewrites it)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// replica is a `bowline up` replica as it registers.
func replica(ns, workload string, i int, port uint32, labels map[string]string, sa string) registry.Workload {
	name := workload + "-" + string(rune('0'+i))
	return registry.Workload{ID: ns + "/" + name, Name: workload, Namespace: ns, Address: "127.0.0.1",
		Ports: map[string]uint32{"http": port}, ContainerPorts: map[string]uint32{"http": 9080},
		Labels: labels, ServiceAccount: sa, Healthy: true}
}

func mesh(t *testing.T) describe.Inputs {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "mesh.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	res := config.Parse("mesh.yaml", data, config.ParseOptions{})
	if len(res.Problems) > 0 {
		t.Fatalf("parse: %v", res.Problems)
	}
	ws := []registry.Workload{
		replica("default", "productpage-v1", 0, 20001, map[string]string{"app": "productpage", "version": "v1"}, "bookinfo-productpage"),
		replica("default", "reviews-v1", 0, 20011, map[string]string{"app": "reviews", "version": "v1"}, "bookinfo-reviews"),
		replica("default", "reviews-v1", 1, 20012, map[string]string{"app": "reviews", "version": "v1"}, "bookinfo-reviews"),
		replica("default", "reviews-v2", 0, 20021, map[string]string{"app": "reviews", "version": "v2"}, "bookinfo-reviews"),
		replica("default", "ratings-v1", 0, 20031, map[string]string{"app": "ratings", "version": "v1"}, "bookinfo-ratings"),
		// A Kubernetes pod without a sidecar.
		{ID: "pod/legacy/legacy-7c9f-x2x", Name: "legacy-7c9f-x2x", Namespace: "legacy", Address: "10.1.0.7",
			Labels: map[string]string{"app": "legacy"}, Healthy: true, Pod: true},
	}
	gw := &model.Proxy{ID: "router~127.0.0.1~istio-ingressgateway-5d8f.istio-system~istio-system.svc.cluster.local", Type: model.Router,
		Namespace: "istio-system", WorkloadName: "istio-ingressgateway", Labels: map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"}}
	return describe.Inputs{Snap: model.Build(res.Objects, registry.Build(res.Objects, ws), model.Options{}), Workloads: ws, Gateways: []*model.Proxy{gw}}
}

func TestDescribe(t *testing.T) {
	in := mesh(t)
	for _, tc := range []struct {
		golden string
		target describe.Target
	}{
		{"pod_reviews_v2", describe.Target{Kind: describe.KindPod, Name: "reviews-v2-0"}},
		{"pod_ratings_strict_vs_disable", describe.Target{Kind: describe.KindPod, Name: "ratings-v1-0", Namespace: "default"}},
		{"pod_productpage_exposed", describe.Target{Kind: describe.KindPod, Name: "productpage-v1"}},
		{"pod_kubernetes_no_sidecar", describe.Target{Kind: describe.KindPod, Name: "legacy-7c9f-x2x", Namespace: "legacy"}},
		{"workload_reviews_v1", describe.Target{Kind: describe.KindWorkload, Name: "reviews-v1"}},
		{"service_reviews", describe.Target{Kind: describe.KindService, Name: "reviews"}},
		{"service_by_hostname", describe.Target{Kind: describe.KindService, Name: "productpage.default.svc.cluster.local"}},
		// A two-label host as the command line splits it (NAME.NAMESPACE).
		{"service_external", describe.Target{Kind: describe.KindService, Name: "payments", Namespace: "example"}},
		{"pod_ingress_gateway", describe.Target{Kind: describe.KindPod, Name: "istio-ingressgateway-5d8f", Namespace: "istio-system"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			var b strings.Builder
			if err := describe.Describe(&b, in, tc.target); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.golden, b.String())
		})
	}
}

func TestDescribeErrors(t *testing.T) {
	in := mesh(t)
	for _, tc := range []struct {
		name     string
		target   describe.Target
		want     string
		notFound bool
	}{
		{"unknown pod", describe.Target{Kind: describe.KindPod, Name: "nope"},
			`pod "nope": not found; pods: legacy-7c9f-x2x.legacy, productpage-v1-0.default, ratings-v1-0.default, reviews-v1-0.default, reviews-v1-1.default, reviews-v2-0.default`, true},
		{"pod in another namespace", describe.Target{Kind: describe.KindPod, Name: "reviews-v2-0", Namespace: "prod"},
			`pod "reviews-v2-0.prod": not found`, true},
		{"unknown service", describe.Target{Kind: describe.KindService, Name: "details", Namespace: "default"},
			`service "details.default": not found; services: legacy.legacy.svc.cluster.local, payments.example, productpage.default.svc.cluster.local, ratings.default.svc.cluster.local, reviews.default.svc.cluster.local`, true},
		{"unknown kind", describe.Target{Kind: "gateway", Name: "x"}, `kind "gateway": want pod, workload or service`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := describe.Describe(&strings.Builder{}, in, tc.target)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if errors.Is(err, describe.ErrNotFound) != tc.notFound {
				t.Errorf("errors.Is(err, ErrNotFound) = %v, want %v", !tc.notFound, tc.notFound)
			}
		})
	}
}

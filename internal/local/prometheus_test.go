package local

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestPrometheusTargets(t *testing.T) {
	groups := prometheusTargets([]scrapeTarget{
		{name: "istio-ingressgateway", namespace: "istio-system", admin: "127.0.0.1:20001", labels: ingressLabels},
		{name: "reviews-v2-0", namespace: "default", admin: "10.88.0.5:15000",
			labels: map[string]string{"app": "reviews", "version": "v2", "app.kubernetes.io/part-of": "bookinfo"}},
		{name: "starting-0", namespace: "default"}, // no admin address yet: not a target
	})
	if len(groups) != 2 {
		t.Fatalf("got %d groups, want 2: %+v", len(groups), groups)
	}
	for _, tc := range []struct {
		name    string
		group   TargetGroup
		target  string
		want    map[string]string
		missing []string
	}{
		{"gateway", groups[0], "127.0.0.1:20001", map[string]string{
			"__meta_kubernetes_namespace":                           "istio-system",
			"__meta_kubernetes_pod_name":                            "istio-ingressgateway",
			"__meta_kubernetes_pod_ip":                              "127.0.0.1",
			"__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
			"__meta_kubernetes_pod_annotation_prometheus_io_port":   "20001",
			"__meta_kubernetes_pod_annotation_prometheus_io_path":   "/stats/prometheus",
			"__meta_kubernetes_pod_label_istio":                     "ingressgateway",
			"__meta_kubernetes_pod_label_app":                       "istio-ingressgateway",
			"__meta_kubernetes_pod_phase":                           "Running",
		}, []string{"__meta_kubernetes_pod_label_version"}},
		{"sidecar in a netns", groups[1], "10.88.0.5:15000", map[string]string{
			"__meta_kubernetes_namespace":                         "default",
			"__meta_kubernetes_pod_name":                          "reviews-v2-0",
			"__meta_kubernetes_pod_ip":                            "10.88.0.5",
			"__meta_kubernetes_pod_annotation_prometheus_io_port": "15000",
			"__meta_kubernetes_pod_label_app":                     "reviews",
			"__meta_kubernetes_pod_label_version":                 "v2",
			// Prometheus's sanitizing of label keys.
			"__meta_kubernetes_pod_label_app_kubernetes_io_part_of":        "bookinfo",
			"__meta_kubernetes_pod_labelpresent_app_kubernetes_io_part_of": "true",
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.group.Targets) != 1 || tc.group.Targets[0] != tc.target {
				t.Errorf("targets %v, want [%s]", tc.group.Targets, tc.target)
			}
			for k, v := range tc.want {
				if got := tc.group.Labels[k]; got != v {
					t.Errorf("label %s = %q, want %q", k, got, v)
				}
			}
			for _, k := range tc.missing {
				if v, ok := tc.group.Labels[k]; ok {
					t.Errorf("label %s = %q, want none", k, v)
				}
			}
		})
	}

	t.Run("file_sd file", func(t *testing.T) {
		dir := t.TempDir()
		if err := writePrometheusTargets(dir, groups); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(dir, PrometheusTargetsFile))
		if err != nil {
			t.Fatal(err)
		}
		var back []TargetGroup
		if err := json.Unmarshal(data, &back); err != nil || len(back) != 2 || back[1].Targets[0] != "10.88.0.5:15000" {
			t.Fatalf("file_sd file does not read back: %v %+v\n%s", err, back, data)
		}
	})
}

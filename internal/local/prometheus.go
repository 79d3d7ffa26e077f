package local

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// PrometheusTargetsFile is the Prometheus file_sd file `bowline up` writes
// into the state directory beside up.json: one target group per proxy.
const PrometheusTargetsFile = "prometheus-targets.json"

// TargetGroup is one entry of a Prometheus file_sd file.
type TargetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// scrapeTarget is one proxy as a pod would show it to Prometheus.
type scrapeTarget struct {
	name, namespace, admin string
	labels                 map[string]string
}

// prometheusTargets describes every proxy with the meta labels Kubernetes
// service discovery (role pod) gives an injected pod: the prometheus.io/scrape,
// /port and /path annotations Istio's injector sets (here the sidecar's
// admin port and /stats/prometheus, Istio's metrics merged with nothing else),
// the pod's labels, namespace, name, IP and phase. Labels starting with
// __meta_ exist only while relabelling, so the relabel_configs of Istio's
// standard `kubernetes-pods` job work unchanged with a file_sd_configs
// pointing at this file in place of kubernetes_sd_configs.
func prometheusTargets(ts []scrapeTarget) []TargetGroup {
	groups := make([]TargetGroup, 0, len(ts))
	for _, t := range ts {
		host, port, err := net.SplitHostPort(t.admin)
		if err != nil {
			continue // not started yet
		}
		l := map[string]string{
			"__meta_kubernetes_namespace":                                  t.namespace,
			"__meta_kubernetes_pod_name":                                   t.name,
			"__meta_kubernetes_pod_ip":                                     host,
			"__meta_kubernetes_pod_phase":                                  "Running",
			"__meta_kubernetes_pod_ready":                                  "true",
			"__meta_kubernetes_pod_container_name":                         "istio-proxy",
			"__meta_kubernetes_pod_annotation_prometheus_io_scrape":        "true",
			"__meta_kubernetes_pod_annotationpresent_prometheus_io_scrape": "true",
			"__meta_kubernetes_pod_annotation_prometheus_io_port":          port,
			"__meta_kubernetes_pod_annotationpresent_prometheus_io_port":   "true",
			"__meta_kubernetes_pod_annotation_prometheus_io_path":          "/stats/prometheus",
			"__meta_kubernetes_pod_annotationpresent_prometheus_io_path":   "true",
		}
		for _, k := range slices.Sorted(maps.Keys(t.labels)) {
			l["__meta_kubernetes_pod_label_"+labelName(k)] = t.labels[k]
			l["__meta_kubernetes_pod_labelpresent_"+labelName(k)] = "true"
		}
		groups = append(groups, TargetGroup{Targets: []string{t.admin}, Labels: l})
	}
	return groups
}

// labelName is a Kubernetes label or annotation key as Prometheus names its
// meta label: every character outside [a-zA-Z0-9_] becomes "_".
func labelName(k string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, k)
}

// writePrometheusTargets writes the file_sd file atomically (write +
// rename), as Prometheus expects of a watched file.
func writePrometheusTargets(dir string, groups []TargetGroup) error {
	data, err := json.MarshalIndent(groups, "", "  ")
	if err != nil {
		return fmt.Errorf("encode prometheus targets: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".prometheus-*.json")
	if err != nil {
		return fmt.Errorf("write prometheus targets: %w", err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("write prometheus targets: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write prometheus targets: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, PrometheusTargetsFile)); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write prometheus targets: %w", err)
	}
	return nil
}

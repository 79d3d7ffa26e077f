package inject

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"istio.io/api/annotation"
	corev1 "k8s.io/api/core/v1"
)

// The prometheus.io annotations Prometheus' Kubernetes scrape config reads.
const (
	promScrape = "prometheus.io/scrape"
	promPath   = "prometheus.io/path"
	promPort   = "prometheus.io/port"
)

// Scrape is the app's own scrape settings the sidecar merges into its
// status port's /stats/prometheus (Istio's ISTIO_PROMETHEUS_ANNOTATIONS).
type Scrape struct {
	Scrape string `json:"scrape"`
	Path   string `json:"path"`
	Port   string `json:"port"`
}

// mergePrometheus does Istio's metrics merging: unless the pod says
// prometheus.io/scrape "false", or prometheus.istio.io/merge-metrics or the
// mesh's enablePrometheusMerge turn it off, Prometheus is pointed at the
// sidecar's status port, which serves the proxy's metrics and the app's own
// (scraped as the app's annotations said) together.
func mergePrometheus(cfg Config, s *settings, pod *corev1.Pod, proxy *corev1.Container) error {
	if s.statusPort == 0 {
		return nil
	}
	if v, ok := pod.Annotations[promScrape]; ok {
		if b, err := strconv.ParseBool(v); err == nil && !b {
			return nil
		}
	}
	if v, ok := pod.Annotations[annotation.PrometheusMergeMetrics.Name]; ok && v == "false" {
		return nil
	}
	if m := cfg.Mesh.GetEnablePrometheusMerge(); m != nil && !m.GetValue() {
		return nil
	}
	target := strconv.Itoa(int(s.statusPort))
	sc := Scrape{Scrape: pod.Annotations[promScrape], Path: pod.Annotations[promPath], Port: pod.Annotations[promPort]}
	if sc.Port != "" {
		n, err := strconv.ParseUint(sc.Port, 10, 16)
		switch {
		case err != nil || n == 0:
			return annotationError(promPort, sc.Port, fmt.Errorf("not a port from 1 to 65535"))
		case sc.Port == target:
			return annotationError(promPort, sc.Port, fmt.Errorf("the sidecar's status port cannot be the app's metrics port"))
		case slices.Contains(reservedPorts, int32(n)):
			return annotationError(promPort, sc.Port, fmt.Errorf("port %d is reserved for the sidecar", n))
		}
	}
	if sc != (Scrape{}) {
		b, err := json.Marshal(sc)
		if err != nil {
			return fmt.Errorf("encode scrape settings: %w", err)
		}
		proxy.Env = append(proxy.Env, corev1.EnvVar{Name: EnvPrometheus, Value: string(b)})
	}
	pod.Annotations[promPort] = target
	pod.Annotations[promPath] = "/stats/prometheus"
	pod.Annotations[promScrape] = "true"
	return nil
}

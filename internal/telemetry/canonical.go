package telemetry

import "strings"

// Istio's workload labels that name a workload's canonical service and its
// revision, the service.istio.io/canonical-* labels and their fallbacks.
const (
	CanonicalNameLabel     = "service.istio.io/canonical-name"
	CanonicalRevisionLabel = "service.istio.io/canonical-revision"
)

// CanonicalService is Istio's canonical service of a workload: its
// service.istio.io/canonical-name label, else app.kubernetes.io/name, else
// app, else the workload name. It names the workload in metrics
// (source_canonical_service), spans (istio.canonical_service) and the
// node's cluster ("CANONICAL.NAMESPACE").
func CanonicalService(labels map[string]string, workload string) string {
	for _, k := range []string{CanonicalNameLabel, "app.kubernetes.io/name", "app"} {
		if v := labels[k]; v != "" {
			return v
		}
	}
	return workload
}

// DefaultCanonicalName is what Istio's injector sets the canonical-name
// label to when a pod has none: app.kubernetes.io/name, else app, else the
// workload name, cut to a label value's 63 characters without leading or
// trailing "-_.".
func DefaultCanonicalName(labels map[string]string, workload string) string {
	n := CanonicalService(map[string]string{"app.kubernetes.io/name": labels["app.kubernetes.io/name"], "app": labels["app"]}, workload)
	if len(n) > 63 {
		n = n[:63]
	}
	return strings.Trim(n, "-_.")
}

package analysis

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/bowline-mesh/bowline/internal/config"
)

// sidecarDefaultSelectorAnalyzer reports namespaces with more than one
// Sidecar without a workload selector (IST0111).
type sidecarDefaultSelectorAnalyzer struct{}

var _ Analyzer = sidecarDefaultSelectorAnalyzer{}

func (sidecarDefaultSelectorAnalyzer) Name() string { return "sidecar.DefaultSelectorAnalyzer" }
func (sidecarDefaultSelectorAnalyzer) Description() string {
	return "Validates that there aren't multiple sidecar resources that have no selector"
}

func (sidecarDefaultSelectorAnalyzer) Analyze(c *Context) {
	reportUnselected(c, config.KindSidecar, MultipleSidecarsWithoutWorkloadSelectors, func(o *config.Object) bool {
		sc, ok := o.Spec.(*networking.Sidecar)
		return ok && len(sc.GetWorkloadSelector().GetLabels()) == 0
	})
}

// telemetryDefaultSelectorAnalyzer reports namespaces with more than one
// Telemetry without a selector or target (IST0160).
type telemetryDefaultSelectorAnalyzer struct{}

var _ Analyzer = telemetryDefaultSelectorAnalyzer{}

func (telemetryDefaultSelectorAnalyzer) Name() string { return "telemetry.DefaultSelectorAnalyzer" }
func (telemetryDefaultSelectorAnalyzer) Description() string {
	return "Validates that there aren't multiple telemetry resources that have no selector"
}

func (telemetryDefaultSelectorAnalyzer) Analyze(c *Context) {
	reportUnselected(c, config.KindTelemetry, MultipleTelemetriesWithoutWorkloadSelectors, func(o *config.Object) bool {
		t, ok := o.Spec.(*telemetry.Telemetry)
		return ok && len(t.GetSelector().GetMatchLabels()) == 0 && t.GetTargetRef() == nil && len(t.GetTargetRefs()) == 0
	})
}

func reportUnselected(c *Context, kind string, t *MessageType, unselected func(*config.Object) bool) {
	byNS := map[string][]*config.Object{}
	var order []string
	for _, o := range c.Objects(kind) {
		if !unselected(o) {
			continue
		}
		if byNS[o.Meta.Namespace] == nil {
			order = append(order, o.Meta.Namespace)
		}
		byNS[o.Meta.Namespace] = append(byNS[o.Meta.Namespace], o)
	}
	for _, ns := range order {
		objs := byNS[ns]
		if len(objs) < 2 {
			continue
		}
		names := make([]string, len(objs))
		for i, o := range objs {
			names[i] = o.Meta.Name
		}
		for _, o := range objs {
			c.Report(t, o, "metadata.name", "["+strings.Join(names, " ")+"]", ns)
		}
	}
}

package model

import (
	"slices"

	telemetry "istio.io/api/telemetry/v1alpha1"

	bltelemetry "github.com/bowline-mesh/bowline/internal/telemetry"
)

// MetricOverride is one Telemetry metrics override as Istio's stats filter
// takes it: for Metric (Istio's name, requests_total; "" for every metric)
// drop it, or remove and upsert tags.
type MetricOverride struct {
	Metric string
	Drop   bool
	// Remove are tags removed; Upsert maps tags to their CEL value.
	Remove []string
	Upsert map[string]string
}

// MetricsSpec is the metrics of one direction of a proxy's traffic.
type MetricsSpec struct {
	// Prometheus is false when no prometheus provider is chosen: no
	// standard metrics are recorded.
	Prometheus bool
	// Overrides apply in order (mesh, namespace, workload).
	Overrides []MetricOverride
}

// Default reports whether s is what a proxy does without configuration:
// every standard metric with its standard tags.
func (s MetricsSpec) Default() bool { return s.Prometheus && len(s.Overrides) == 0 }

// MetricsConfig is a proxy's metrics: Client for outbound traffic (and
// gateways), Server for inbound.
type MetricsConfig struct {
	Client, Server MetricsSpec
}

// Metrics returns the metrics in force for p with Istio's precedence: the
// providers of the most specific Telemetry level that names some (else
// MeshConfig defaultProviders.metrics, else prometheus, Istio's default),
// and the overrides of the mesh, namespace and workload levels in that
// order, each for its match.mode. Custom metrics are not supported and
// their overrides are skipped.
func (s *Snapshot) Metrics(p *Proxy) MetricsConfig {
	m := s.mesh
	type acc struct {
		providers []string
		overrides []MetricOverride
	}
	client, server := acc{providers: m.DefaultMetrics}, acc{providers: m.DefaultMetrics}
	for _, t := range s.telemetryLevels(p) {
		for _, mt := range t.GetMetrics() {
			for _, a := range []*acc{&client, &server} {
				if ps := mt.GetProviders(); len(ps) > 0 {
					a.providers = nil
					for _, pr := range ps {
						a.providers = append(a.providers, pr.GetName())
					}
				}
			}
			for _, o := range mt.GetOverrides() {
				if _, custom := o.GetMatch().GetMetricMatch().(*telemetry.MetricSelector_CustomMetric); custom {
					continue
				}
				ov := MetricOverride{Drop: o.GetDisabled().GetValue()}
				if name := o.GetMatch().GetMetric(); name != telemetry.MetricSelector_ALL_METRICS {
					ov.Metric = bltelemetry.IstioMetrics[name.String()]
				}
				tags := make([]string, 0, len(o.GetTagOverrides()))
				for k := range o.GetTagOverrides() {
					tags = append(tags, k)
				}
				slices.Sort(tags)
				for _, k := range tags {
					to := o.GetTagOverrides()[k]
					if to.GetOperation() == telemetry.MetricsOverrides_TagOverride_REMOVE {
						ov.Remove = append(ov.Remove, k)
						continue
					}
					if ov.Upsert == nil {
						ov.Upsert = map[string]string{}
					}
					ov.Upsert[k] = to.GetValue()
				}
				mode := o.GetMatch().GetMode()
				if mode != telemetry.WorkloadMode_SERVER {
					client.overrides = append(client.overrides, ov)
				}
				if mode != telemetry.WorkloadMode_CLIENT {
					server.overrides = append(server.overrides, ov)
				}
			}
		}
	}
	spec := func(a acc) MetricsSpec {
		out := MetricsSpec{Overrides: a.overrides}
		if len(a.providers) == 0 {
			out.Prometheus = true
		}
		for _, name := range a.providers {
			if pr := m.Provider(name); pr != nil && pr.Kind == ProviderPrometheus {
				out.Prometheus = true
			}
		}
		return out
	}
	return MetricsConfig{Client: spec(client), Server: spec(server)}
}

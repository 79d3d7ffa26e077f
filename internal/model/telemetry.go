package model

import (
	"maps"

	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/bowline-mesh/bowline/internal/registry"
)

// Telemetry is a resolved Telemetry resource.
type Telemetry struct {
	Name, Namespace string
	Spec            *telemetry.Telemetry
}

// TracingSpec is the tracing in force for one direction of a proxy's
// traffic (Istio's model.TracingSpec).
type TracingSpec struct {
	// Enabled is false when nothing traces this direction (no provider is
	// configured, or span reporting is disabled).
	Enabled bool
	// Provider is the extension provider spans are reported to.
	Provider *ExtensionProvider
	// Sampling is the random sampling percentage.
	Sampling float64
	// CustomTags are the Telemetry's custom tags by name.
	CustomTags map[string]*telemetry.Tracing_CustomTag
}

// TracingConfig is a proxy's tracing: Client for its outbound traffic
// (and gateways), Server for inbound.
type TracingConfig struct {
	Client, Server TracingSpec
}

// telemetryLevels returns the Telemetry resources that apply to p, from the
// least specific to the most: the mesh default (root namespace, no
// selector), the namespace default (no selector), then those whose selector
// matches p's labels. Resources with targetRefs (gateway and waypoint
// attachment) are not applied.
func (s *Snapshot) telemetryLevels(p *Proxy) []*telemetry.Telemetry {
	var root, ns, wl []*telemetry.Telemetry
	for _, t := range s.telemetries {
		spec := t.Spec
		if spec.GetTargetRef() != nil || len(spec.GetTargetRefs()) > 0 {
			continue
		}
		sel := spec.GetSelector().GetMatchLabels()
		switch {
		case len(sel) == 0 && t.Namespace == s.rootNamespace:
			root = append(root, spec)
		case len(sel) == 0 && t.Namespace == p.Namespace:
			ns = append(ns, spec)
		case len(sel) > 0 && t.Namespace == p.Namespace && registry.LabelsMatch(sel, p.Labels):
			wl = append(wl, spec)
		}
	}
	// Istio uses one resource per level (the oldest; here the first by name).
	var out []*telemetry.Telemetry
	for _, l := range [][]*telemetry.Telemetry{root, ns, wl} {
		if len(l) > 0 {
			out = append(out, l[0])
		}
	}
	return out
}

// Tracing returns the tracing in force for p with Istio's precedence:
// workload over namespace over mesh Telemetry, each overriding the fields
// it sets (providers, randomSamplingPercentage, disableSpanReporting;
// customTags by name), then MeshConfig's defaultProviders.tracing and
// defaultConfig.tracing.sampling. Tracing is enabled only where a provider
// is named: without one there is nothing to report to.
func (s *Snapshot) Tracing(p *Proxy) TracingConfig {
	m := s.mesh
	type acc struct {
		providers []string
		sampling  *float64
		disabled  bool
		tags      map[string]*telemetry.Tracing_CustomTag
	}
	client, server := acc{providers: m.DefaultTracing}, acc{providers: m.DefaultTracing}
	levels := s.telemetryLevels(p)
	for _, t := range levels {
		for _, tr := range t.GetTracing() {
			mode := tr.GetMatch().GetMode()
			for _, a := range []*acc{&client, &server} {
				if (a == &client && mode == telemetry.WorkloadMode_SERVER) || (a == &server && mode == telemetry.WorkloadMode_CLIENT) {
					continue
				}
				if ps := tr.GetProviders(); len(ps) > 0 {
					a.providers = nil
					for _, pr := range ps {
						a.providers = append(a.providers, pr.GetName())
					}
				}
				if v := tr.GetRandomSamplingPercentage(); v != nil {
					f := v.GetValue()
					a.sampling = &f
				}
				if v := tr.GetDisableSpanReporting(); v != nil {
					a.disabled = v.GetValue()
				}
				if len(tr.GetCustomTags()) > 0 {
					if a.tags == nil {
						a.tags = map[string]*telemetry.Tracing_CustomTag{}
					}
					maps.Copy(a.tags, tr.GetCustomTags())
				}
			}
		}
	}
	spec := func(a acc) TracingSpec {
		if len(levels) == 0 && !m.EnableTracing {
			return TracingSpec{}
		}
		out := TracingSpec{Sampling: m.TraceSampling, CustomTags: a.tags}
		if a.sampling != nil {
			out.Sampling = *a.sampling
		}
		if len(a.providers) > 0 {
			out.Provider = m.Provider(a.providers[0])
		}
		out.Enabled = out.Provider != nil && !a.disabled
		return out
	}
	return TracingConfig{Client: spec(client), Server: spec(server)}
}

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
// selector), the namespace default (no selector), then the workload level:
// those whose selector matches p's labels in p's namespace, or whose
// targetRefs attach to p (a Gateway API Gateway or GatewayClass p serves,
// targetRefsAttach), as in Istio.
func (s *Snapshot) telemetryLevels(p *Proxy) []*telemetry.Telemetry {
	var root, ns, wl []*telemetry.Telemetry
	for _, t := range s.telemetries {
		spec := t.Spec
		if refs := policyTargets(spec.GetTargetRef(), spec.GetTargetRefs()); len(refs) > 0 {
			if s.targetRefsAttach(p, t.Namespace, refs) {
				wl = append(wl, spec)
			}
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

// AccessLog is one access log a proxy writes (Envoy's file logger).
type AccessLog struct {
	// Path is the file ("/dev/stdout"); "/dev/null" for logging disabled.
	Path string
	// JSON writes JSON lines, else text.
	JSON bool
	// Filter is the CEL filter expression ("" logs everything).
	Filter string
	// Text and Labels are the provider's logFormat (Envoy command operators):
	// a text line, or JSON keys; both empty for Istio's default format.
	Text   string
	Labels map[string]string
}

// AccessLogConfig is a proxy's access logging per direction. A nil slice
// means nothing configures logging (the proxy's own default applies); an
// entry with Path "/dev/null" means logging is disabled.
type AccessLogConfig struct {
	Client, Server []AccessLog
}

// AccessLogging returns the access logging in force for p with Istio's
// precedence: workload over namespace over mesh Telemetry accessLogging
// (providers, disabled, filter; match.mode), then MeshConfig
// defaultProviders.accessLogging, then MeshConfig accessLogFile.
func (s *Snapshot) AccessLogging(p *Proxy) AccessLogConfig {
	m := s.mesh
	type acc struct {
		set       bool
		providers []string
		disabled  bool
		filter    string
	}
	var client, server acc
	for _, t := range s.telemetryLevels(p) {
		for _, al := range t.GetAccessLogging() {
			mode := al.GetMatch().GetMode()
			for _, a := range []*acc{&client, &server} {
				if (a == &client && mode == telemetry.WorkloadMode_SERVER) || (a == &server && mode == telemetry.WorkloadMode_CLIENT) {
					continue
				}
				a.set = true
				if ps := al.GetProviders(); len(ps) > 0 {
					a.providers = nil
					for _, pr := range ps {
						a.providers = append(a.providers, pr.GetName())
					}
				}
				if v := al.GetDisabled(); v != nil {
					a.disabled = v.GetValue()
				}
				if f := al.GetFilter(); f != nil {
					a.filter = f.GetExpression()
				}
			}
		}
	}
	meshFile := func() []AccessLog {
		if m.AccessLogFile == "" {
			return nil
		}
		return []AccessLog{{Path: m.AccessLogFile, JSON: m.AccessLogEncoding == AccessLogJSON}}
	}
	build := func(a acc) []AccessLog {
		if !a.set {
			if len(m.DefaultAccessLogging) == 0 {
				return meshFile()
			}
			a.providers = m.DefaultAccessLogging
		}
		if a.disabled {
			return []AccessLog{{Path: "/dev/null"}}
		}
		if len(a.providers) == 0 {
			a.providers = m.DefaultAccessLogging
		}
		if len(a.providers) == 0 {
			a.providers = []string{"envoy"}
		}
		var out []AccessLog
		for _, name := range a.providers {
			pr := m.Provider(name)
			if pr == nil || pr.Kind != ProviderEnvoyFileAccessLog {
				continue // other access log providers are not implemented
			}
			fl := pr.Raw.GetEnvoyFileAccessLog()
			path := fl.GetPath()
			if path == "" {
				path = "/dev/stdout"
			}
			json := fl.GetLogFormat().GetLabels() != nil || (fl.GetLogFormat() == nil && m.AccessLogEncoding == AccessLogJSON)
			l := AccessLog{Path: path, JSON: json, Filter: a.filter, Text: fl.GetLogFormat().GetText()}
			if ls := fl.GetLogFormat().GetLabels(); ls != nil {
				l.Labels = map[string]string{}
				for k, v := range ls.GetFields() {
					l.Labels[k] = v.GetStringValue()
				}
			}
			out = append(out, l)
		}
		if out == nil {
			return []AccessLog{{Path: "/dev/null"}}
		}
		return out
	}
	return AccessLogConfig{Client: build(client), Server: build(server)}
}

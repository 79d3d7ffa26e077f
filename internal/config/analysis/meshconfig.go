package analysis

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/bowline-mesh/bowline/internal/config"
)

// meshProvidersAnalyzer reports MeshConfig extension providers whose
// service is not a host the files define, and Telemetry resources that name
// a provider the MeshConfig does not define.
type meshProvidersAnalyzer struct{}

var _ Analyzer = meshProvidersAnalyzer{}

func (meshProvidersAnalyzer) Name() string { return "meshconfig.ExtensionProviderAnalyzer" }
func (meshProvidersAnalyzer) Description() string {
	return "Checks that MeshConfig extension providers point at known services and that Telemetry names defined providers"
}

func (meshProvidersAnalyzer) Analyze(c *Context) {
	var mesh *config.Object
	for _, kind := range []string{config.KindConfigMap, config.KindMeshConfig} {
		for _, o := range c.Objects(kind) {
			if config.MeshConfigOf(o) != nil {
				mesh = o
			}
		}
	}
	mc := config.DefaultMeshConfig()
	if mesh != nil {
		mc = config.MeshConfigOf(mesh)
		for i, p := range mc.GetExtensionProviders() {
			svc := providerService(p)
			if svc == "" {
				continue
			}
			ns, host := mesh.Meta.Namespace, svc
			if n, h, ok := strings.Cut(svc, "/"); ok {
				ns, host = n, h
			}
			if c.registry.lookup(host, ns) == nil {
				c.Report(ReferencedResourceNotFound, mesh, config.MeshConfigPath(mesh, fmt.Sprintf("extensionProviders[%d]", i)),
					"host", host)
			}
		}
	}
	defined := map[string]bool{}
	for _, p := range mc.GetExtensionProviders() {
		defined[p.GetName()] = true
	}
	for _, o := range c.Objects(config.KindTelemetry) {
		t, ok := o.Spec.(*telemetry.Telemetry)
		if !ok {
			continue
		}
		check := func(path string, refs []*telemetry.ProviderRef) {
			for i, r := range refs {
				if r.GetName() != "" && !defined[r.GetName()] {
					c.Report(ReferencedResourceNotFound, o, fmt.Sprintf("%s[%d].name", path, i), "extension provider", r.GetName())
				}
			}
		}
		for i, tr := range t.GetTracing() {
			check(fmt.Sprintf("spec.tracing[%d].providers", i), tr.GetProviders())
		}
		for i, m := range t.GetMetrics() {
			check(fmt.Sprintf("spec.metrics[%d].providers", i), m.GetProviders())
		}
		for i, a := range t.GetAccessLogging() {
			check(fmt.Sprintf("spec.accessLogging[%d].providers", i), a.GetProviders())
		}
	}
}

// providerService returns the service field of whichever provider kind p
// sets ("" for kinds without one: prometheus, envoyFileAccessLog).
func providerService(p *meshv1alpha1.MeshConfig_ExtensionProvider) string {
	m := p.ProtoReflect()
	od := m.Descriptor().Oneofs().ByName("provider")
	if od == nil {
		return ""
	}
	fd := m.WhichOneof(od)
	if fd == nil || fd.Message() == nil {
		return ""
	}
	sub := m.Get(fd).Message()
	sf := sub.Descriptor().Fields().ByName("service")
	if sf == nil || sf.Kind() != protoreflect.StringKind {
		return ""
	}
	return sub.Get(sf).String()
}

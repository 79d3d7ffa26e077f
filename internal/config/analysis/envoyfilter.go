package analysis

import (
	"fmt"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/config/envoypatch"
)

// envoyFilterExtensionAnalyzer reports the Envoy extensions EnvoyFilter
// patches bring in that Bowline's proxy does not run (BWL0003): a proxy the
// patch applies to would refuse the patched config. It needs
// Options.ProxySupports (the CLI gives the proxy's own check); without it
// nothing is reported.
type envoyFilterExtensionAnalyzer struct{}

var _ Analyzer = envoyFilterExtensionAnalyzer{}

func (envoyFilterExtensionAnalyzer) Name() string { return "bowline.EnvoyFilterExtensionAnalyzer" }
func (envoyFilterExtensionAnalyzer) Description() string {
	return "Checks that the Envoy filters EnvoyFilter patches add are ones Bowline's proxy runs"
}

func (envoyFilterExtensionAnalyzer) Analyze(c *Context) {
	supports := c.opts.ProxySupports
	if supports == nil {
		return
	}
	for _, o := range c.Objects(config.KindEnvoyFilter) {
		ef, ok := o.Spec.(*networking.EnvoyFilter)
		if !ok {
			continue
		}
		for i, cp := range ef.GetConfigPatches() {
			if cp.GetPatch().GetValue() == nil || cp.GetPatch().GetOperation() == networking.EnvoyFilter_Patch_REMOVE {
				continue
			}
			v, err := envoypatch.Value(cp.GetApplyTo(), cp.GetPatch().GetValue())
			if err != nil || v == nil {
				continue // the schema analyzer reports it
			}
			path := fmt.Sprintf("spec.configPatches[%d].patch.value", i)
			for _, e := range envoypatch.Extensions(v) {
				at := path
				if e.Path != "" {
					at += "." + e.Path
				}
				switch {
				case e.Discovered: // Bowline serves no ECDS
					c.Report(UnsupportedEnvoyExtension, o, path, e.Kind, e.Name, "extension config discovery", at)
				case e.TypeURL == "" && e.Kind != envoypatch.ListenerFilter:
					// a MERGE naming a filter without a config
				case !supports(e.Kind, e.Name, e.TypeURL):
					c.Report(UnsupportedEnvoyExtension, o, path, e.Kind, e.Name, e.TypeURL, at)
				}
			}
		}
	}
}

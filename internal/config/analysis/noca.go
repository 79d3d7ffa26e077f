package analysis

import (
	"fmt"
	"maps"
	"slices"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/bowline-mesh/bowline/internal/config"
)

// noCAAnalyzer reports, when Options.NoCA is set, the configuration a mesh
// without a CA cannot honour (BWL0001): ISTIO_MUTUAL in a DestinationRule
// and STRICT in a PeerAuthentication. Such a mesh sends and accepts
// plaintext instead, which is what discovery does too (and lists on
// /debug/configz).
type noCAAnalyzer struct{}

var _ Analyzer = noCAAnalyzer{}

func (noCAAnalyzer) Name() string { return "bowline.MTLSWithoutCAAnalyzer" }
func (noCAAnalyzer) Description() string {
	return "With --no-ca, checks for ISTIO_MUTUAL DestinationRules and STRICT PeerAuthentications, which need workload certificates"
}

func (noCAAnalyzer) Analyze(c *Context) {
	if !c.opts.NoCA {
		return
	}
	for _, o := range c.Objects(config.KindDestinationRule) {
		dr, ok := o.Spec.(*networking.DestinationRule)
		if !ok {
			continue
		}
		check := func(tp *networking.TrafficPolicy, path string) {
			if tp.GetTls().GetMode() == networking.ClientTLSSettings_ISTIO_MUTUAL {
				c.Report(MTLSWithoutCA, o, path+".tls.mode", path+".tls.mode", "ISTIO_MUTUAL", "plaintext is sent")
			}
			for i, pl := range tp.GetPortLevelSettings() {
				if pl.GetTls().GetMode() == networking.ClientTLSSettings_ISTIO_MUTUAL {
					p := fmt.Sprintf("%s.portLevelSettings[%d].tls.mode", path, i)
					c.Report(MTLSWithoutCA, o, p, p, "ISTIO_MUTUAL", "plaintext is sent")
				}
			}
		}
		check(dr.GetTrafficPolicy(), "spec.trafficPolicy")
		for i, sub := range dr.GetSubsets() {
			check(sub.GetTrafficPolicy(), fmt.Sprintf("spec.subsets[%d].trafficPolicy", i))
		}
	}
	for _, o := range c.Objects(config.KindPeerAuthentication) {
		pa, ok := o.Spec.(*security.PeerAuthentication)
		if !ok {
			continue
		}
		if pa.GetMtls().GetMode() == security.PeerAuthentication_MutualTLS_STRICT {
			c.Report(MTLSWithoutCA, o, "spec.mtls.mode", "spec.mtls.mode", "STRICT", "plaintext is accepted")
		}
		for _, port := range slices.Sorted(maps.Keys(pa.GetPortLevelMtls())) {
			if pa.GetPortLevelMtls()[port].GetMode() == security.PeerAuthentication_MutualTLS_STRICT {
				p := fmt.Sprintf("spec.portLevelMtls[%d].mode", port)
				c.Report(MTLSWithoutCA, o, p, p, "STRICT", "plaintext is accepted")
			}
		}
	}
}

package analysis

import (
	"fmt"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/config"
)

// destinationRuleCACertAnalyzer reports DestinationRules that originate TLS
// (SIMPLE or MUTUAL) without a way to verify the server: no caCertificates,
// no credentialName and insecureSkipVerify not set (IST0128, IST0129).
type destinationRuleCACertAnalyzer struct{}

var _ Analyzer = destinationRuleCACertAnalyzer{}

func (destinationRuleCACertAnalyzer) Name() string { return "destinationrule.CaCertificateAnalyzer" }
func (destinationRuleCACertAnalyzer) Description() string {
	return "Checks if caCertificates is set when TLS mode is SIMPLE/MUTUAL"
}

func unverifiedTLS(tls *networking.ClientTLSSettings) bool {
	mode := tls.GetMode()
	if mode != networking.ClientTLSSettings_SIMPLE && mode != networking.ClientTLSSettings_MUTUAL {
		return false
	}
	return tls.GetCaCertificates() == "" && tls.GetCredentialName() == "" && !tls.GetInsecureSkipVerify().GetValue()
}

func (destinationRuleCACertAnalyzer) Analyze(c *Context) {
	for _, o := range c.Objects(config.KindDestinationRule) {
		dr, ok := o.Spec.(*networking.DestinationRule)
		if !ok {
			continue
		}
		tp := dr.GetTrafficPolicy()
		if tls := tp.GetTls(); unverifiedTLS(tls) {
			c.Report(NoServerCertificateVerificationDestinationLevel, o, "spec.trafficPolicy.tls.mode",
				o.Meta.Namespace+"/"+o.Meta.Name, o.Meta.Namespace, tls.GetMode().String(), dr.GetHost())
		}
		for i, p := range tp.GetPortLevelSettings() {
			if tls := p.GetTls(); unverifiedTLS(tls) {
				c.Report(NoServerCertificateVerificationPortLevel, o, fmt.Sprintf("spec.trafficPolicy.portLevelSettings[%d].tls.mode", i),
					o.Meta.Namespace+"/"+o.Meta.Name, o.Meta.Namespace, tls.GetMode().String(), dr.GetHost(),
					fmt.Sprintf("number:%d", p.GetPort().GetNumber()))
			}
		}
	}
}

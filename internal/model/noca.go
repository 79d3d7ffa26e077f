package model

import (
	"fmt"
	"maps"
	"slices"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/bowline-mesh/bowline/internal/config"
)

// NoCA reports whether the mesh runs without a CA (Options.NoCA): no
// workload has a certificate, so nothing is generated that needs one. Auto
// mTLS is off, every inbound port is plaintext whatever PeerAuthentication
// says, and an explicit ISTIO_MUTUAL DestinationRule sends plaintext; the
// configuration that asked for mTLS is listed in Problems.
func (s *Snapshot) NoCA() bool { return s.noCA }

// noCAProblem ends every problem of a mesh without a CA.
const noCAProblem = "needs workload certificates, but discovery runs without a CA (--insecure-xds without --ca-dir)"

// mtlsWithoutCAProblems lists the configuration of objs that asks for mTLS
// a mesh without a CA cannot give: ISTIO_MUTUAL in a DestinationRule
// (traffic policy, port-level settings, subsets) and STRICT in a
// PeerAuthentication (mode, portLevelMtls).
func mtlsWithoutCAProblems(objs []*config.Object) []string {
	var out []string
	for _, o := range objs {
		ref := o.Meta.Namespace + "/" + o.Meta.Name
		switch spec := o.Spec.(type) {
		case *networking.DestinationRule:
			check := func(tp *networking.TrafficPolicy, path string) {
				if tp.GetTls().GetMode() == networking.ClientTLSSettings_ISTIO_MUTUAL {
					out = append(out, fmt.Sprintf("DestinationRule %s: %s.tls.mode ISTIO_MUTUAL %s: plaintext is sent instead", ref, path, noCAProblem))
				}
				for i, pl := range tp.GetPortLevelSettings() {
					if pl.GetTls().GetMode() == networking.ClientTLSSettings_ISTIO_MUTUAL {
						out = append(out, fmt.Sprintf("DestinationRule %s: %s.portLevelSettings[%d].tls.mode ISTIO_MUTUAL %s: plaintext is sent instead", ref, path, i, noCAProblem))
					}
				}
			}
			check(spec.GetTrafficPolicy(), "spec.trafficPolicy")
			for i, sub := range spec.GetSubsets() {
				check(sub.GetTrafficPolicy(), fmt.Sprintf("spec.subsets[%d].trafficPolicy", i))
			}
		case *security.PeerAuthentication:
			if spec.GetMtls().GetMode() == security.PeerAuthentication_MutualTLS_STRICT {
				out = append(out, fmt.Sprintf("PeerAuthentication %s: spec.mtls.mode STRICT %s: plaintext is accepted instead", ref, noCAProblem))
			}
			for _, port := range slices.Sorted(maps.Keys(spec.GetPortLevelMtls())) {
				if spec.GetPortLevelMtls()[port].GetMode() == security.PeerAuthentication_MutualTLS_STRICT {
					out = append(out, fmt.Sprintf("PeerAuthentication %s: spec.portLevelMtls[%d].mode STRICT %s: plaintext is accepted instead", ref, port, noCAProblem))
				}
			}
		}
	}
	return out
}

package analysis

import (
	"fmt"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/bowline-mesh/bowline/internal/config"
)

// mtlsAnalyzer reports a DestinationRule whose explicit client TLS mode
// contradicts the PeerAuthentication that governs the destination's
// workloads (IST0113): plaintext or non-Istio TLS to a STRICT service, or
// ISTIO_MUTUAL to a service whose policy is DISABLE. With auto mTLS (Istio's
// default) a DestinationRule without tls settings never conflicts, so only
// explicit settings are checked. Policies with a workload selector are not
// considered: files alone do not say which workloads they select.
type mtlsAnalyzer struct{}

var _ Analyzer = mtlsAnalyzer{}

func (mtlsAnalyzer) Name() string { return "auth.MTLSAnalyzer" }
func (mtlsAnalyzer) Description() string {
	return "Checks for DestinationRule TLS modes that conflict with PeerAuthentication mTLS modes"
}

// policy is the PeerAuthentication in effect and the mode it sets.
type policy struct {
	obj  *config.Object
	mode security.PeerAuthentication_MutualTLS_Mode
}

func (mtlsAnalyzer) Analyze(c *Context) {
	root := c.opts.rootNamespace()
	// namespace-wide policies (no selector), first by name per namespace
	nsPolicy := map[string]policy{}
	for _, o := range c.Objects(config.KindPeerAuthentication) {
		pa, ok := o.Spec.(*security.PeerAuthentication)
		if !ok || len(pa.GetSelector().GetMatchLabels()) > 0 {
			continue
		}
		if _, dup := nsPolicy[o.Meta.Namespace]; !dup {
			nsPolicy[o.Meta.Namespace] = policy{obj: o, mode: pa.GetMtls().GetMode()}
		}
	}
	effective := func(ns string) (policy, bool) {
		if p, ok := nsPolicy[ns]; ok && p.mode != security.PeerAuthentication_MutualTLS_UNSET {
			return p, true
		}
		if p, ok := nsPolicy[root]; ok && p.mode != security.PeerAuthentication_MutualTLS_UNSET {
			return p, true
		}
		return policy{}, false
	}
	domain := c.opts.domain()
	for _, o := range c.Objects(config.KindDestinationRule) {
		dr, ok := o.Spec.(*networking.DestinationRule)
		if !ok || len(dr.GetWorkloadSelector().GetMatchLabels()) > 0 {
			continue
		}
		host := fqdn(dr.GetHost(), o.Meta.Namespace, domain)
		ns := hostNamespace(host, domain)
		if ns == "" {
			if s := c.registry.lookup(host, o.Meta.Namespace); s != nil && !s.external && !isWildcard(s.host) {
				ns = s.namespace
			} else if isWildcard(host) && hostsMatch(host, "any.any.svc."+domain) {
				// a mesh-wide wildcard ("*.local", "*.svc.cluster.local"): mesh-wide policy
				ns = root
			}
		}
		if ns == "" {
			continue
		}
		p, ok := effective(ns)
		if !ok {
			continue
		}
		check := func(tls *networking.ClientTLSSettings, path string) {
			if tls == nil {
				return
			}
			mtls := tls.GetMode() == networking.ClientTLSSettings_ISTIO_MUTUAL
			conflict := (p.mode == security.PeerAuthentication_MutualTLS_STRICT && !mtls) ||
				(p.mode == security.PeerAuthentication_MutualTLS_DISABLE && mtls)
			if !conflict {
				return
			}
			drName := o.Meta.Namespace + "/" + o.Meta.Name
			paName := p.obj.Meta.Namespace + "/" + p.obj.Meta.Name
			c.Report(MTLSPolicyConflict, o, path, host, drName, mtls, paName, p.mode.String())
			c.Report(MTLSPolicyConflict, p.obj, "spec.mtls.mode", host, drName, mtls, paName, p.mode.String())
		}
		check(dr.GetTrafficPolicy().GetTls(), "spec.trafficPolicy.tls.mode")
		for i, pl := range dr.GetTrafficPolicy().GetPortLevelSettings() {
			check(pl.GetTls(), fmt.Sprintf("spec.trafficPolicy.portLevelSettings[%d].tls.mode", i))
		}
	}
}

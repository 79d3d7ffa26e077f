package validation

import (
	"fmt"
	"maps"
	"slices"
	"strconv"

	security "istio.io/api/security/v1beta1"

	"github.com/bowline-mesh/bowline/internal/config"
)

// validatePeerAuthentication applies Istio's rules for PeerAuthentication:
// port-level mTLS only on workload-scoped policies, ports 1-65535, and a
// well-formed workload selector.
func validatePeerAuthentication(obj *config.Object) []config.FieldError {
	pa, ok := obj.Spec.(*security.PeerAuthentication)
	if !ok {
		return []config.FieldError{{Path: "spec", Reason: fmt.Sprintf("unexpected spec type %T", obj.Spec)}}
	}
	r := &fieldErrors{}
	secCheckDryRun(r, obj)
	secCheckSelector(r, "spec.selector", pa.GetSelector())

	ports := pa.GetPortLevelMtls()
	switch {
	case len(ports) == 0 && secWritten(obj, "spec.portLevelMtls"):
		r.errorf("spec.portLevelMtls", "must list at least one port if set")
	case len(ports) > 0 && len(pa.GetSelector().GetMatchLabels()) == 0:
		r.errorf("spec.portLevelMtls", "requires a workload selector with labels; mesh-wide and namespace-wide policies cannot set port-level mTLS")
	}
	for _, port := range slices.Sorted(maps.Keys(ports)) {
		if port == 0 || port > 65535 {
			r.errorf(keyPath("spec.portLevelMtls", strconv.FormatUint(uint64(port), 10)), "port %d is not in 1-65535", port)
		}
	}
	return r.list
}

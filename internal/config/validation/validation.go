package validation

import (
	"github.com/bowline-mesh/bowline/internal/config"
)

// kindValidator validates one kind's spec. Paths in the returned errors are
// rooted at the document ("spec.http[0].route[1].weight").
type kindValidator func(obj *config.Object) []config.FieldError

// validators maps each kind to its rules.
var validators = map[string]kindValidator{
	config.KindVirtualService:        validateVirtualService,
	config.KindDestinationRule:       validateDestinationRule,
	config.KindGateway:               validateGateway,
	config.KindServiceEntry:          validateServiceEntry,
	config.KindSidecar:               validateSidecar,
	config.KindWorkloadEntry:         validateWorkloadEntry,
	config.KindWorkloadGroup:         validateWorkloadGroup,
	config.KindEnvoyFilter:           validateEnvoyFilter,
	config.KindProxyConfig:           validateProxyConfig,
	config.KindPeerAuthentication:    validatePeerAuthentication,
	config.KindAuthorizationPolicy:   validateAuthorizationPolicy,
	config.KindRequestAuthentication: validateRequestAuthentication,
	config.KindTelemetry:             validateTelemetry,
	config.KindConfigMap:             validateMeshConfig,
	config.KindMeshConfig:            validateMeshConfig,
}

// Object returns every semantic problem of obj. A kind without rules has none.
func Object(obj *config.Object) []config.FieldError {
	table := validators
	if obj.IsGatewayAPI() {
		table = gatewayAPIValidators
	}
	v, ok := table[obj.GVK.Kind]
	if !ok || obj.Spec == nil {
		return nil
	}
	return v(obj)
}

// Objects validates every object and returns the located problems, and the
// objects that have no errors (warnings do not reject an object).
func Objects(objs []*config.Object) (valid []*config.Object, problems config.Problems) {
	for _, obj := range objs {
		rejected := false
		for _, fe := range Object(obj) {
			problems = append(problems, config.ProblemFor(obj, fe))
			if !fe.Warning {
				rejected = true
			}
		}
		if !rejected {
			valid = append(valid, obj)
		}
	}
	return valid, problems
}

package validation

import "github.com/bowline-mesh/bowline/internal/config"

// Placeholders until the networking rules land; each file replaces its stub.

func validateDestinationRule(*config.Object) []config.FieldError { return nil }
func validateGateway(*config.Object) []config.FieldError         { return nil }
func validateServiceEntry(*config.Object) []config.FieldError    { return nil }
func validateSidecar(*config.Object) []config.FieldError         { return nil }
func validateWorkloadEntry(*config.Object) []config.FieldError   { return nil }
func validateWorkloadGroup(*config.Object) []config.FieldError   { return nil }

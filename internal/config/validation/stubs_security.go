package validation

import "github.com/bowline-mesh/bowline/internal/config"

// Placeholders until the security, telemetry and extension rules land; each file replaces its stub.

func validateEnvoyFilter(*config.Object) []config.FieldError           { return nil }
func validateProxyConfig(*config.Object) []config.FieldError           { return nil }
func validatePeerAuthentication(*config.Object) []config.FieldError    { return nil }
func validateAuthorizationPolicy(*config.Object) []config.FieldError   { return nil }
func validateRequestAuthentication(*config.Object) []config.FieldError { return nil }
func validateTelemetry(*config.Object) []config.FieldError             { return nil }

// Package validation holds the semantic rules Istio's own validation enforces
// for each configuration kind (host syntax, weights, durations, ports, regex
// syntax, field combinations, ...). The schema itself (unknown fields, types)
// is checked by the config loader; this package assumes a decoded spec.
//
// It imports only config and the Istio API types.
package validation

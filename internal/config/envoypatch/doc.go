// Package envoypatch turns the values of EnvoyFilter configPatches (free-form
// structs in the Istio API) into the Envoy protos they stand for, as Istio
// does: the applyTo decides the message (LISTENER a Listener, HTTP_FILTER an
// HttpFilter, ...), the struct is read as that message's JSON with Envoy's
// field names, and typed configs ("@type") resolve against the Envoy
// extensions Bowline knows (types.go). A TypedStruct naming a known type is
// replaced by that type, so what reaches an xDS client is the plain typed
// config.
//
// It also lists the extensions a patch value brings in (Extensions), which
// `bowline analyze` checks against what Bowline's proxy runs.
//
// Validation, the mesh model and analysis use it; it imports only Envoy's and
// Istio's API types and must not import other Bowline packages.
package envoypatch

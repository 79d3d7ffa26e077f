// Package server is Bowline's ADS server: it serves Envoy xDS v3 (state of the
// world and delta, aggregated over one gRPC stream) with go-control-plane,
// identifies each client from its node id and metadata (docs/xds.md), rebuilds
// the mesh model when the configuration or the service registry changes
// (debounced), generates resources once per distinct proxy (sidecars share
// their scope's outbound part, ADR 0003), pushes only what changed (each
// resource encoded once and shared by every stream and node, ADR 0002; delta
// and by-name EDS/RDS get only changed resources), and tracks what every
// proxy acknowledged. It also serves the debug
// and registration HTTP API of `bowline discovery`.
//
// It imports config, registry, model and the xds generators; it must not
// import proxy or cli.
package server

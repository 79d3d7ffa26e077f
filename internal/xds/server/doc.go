// Package server is Bowline's ADS server: it serves Envoy xDS v3 (state of the
// world and delta, aggregated over one gRPC stream) with go-control-plane,
// identifies each client from its node id and metadata (docs/xds.md), rebuilds
// the mesh model when the configuration or the service registry changes
// (debounced), generates resources per connected proxy, pushes only what
// changed, and tracks what every proxy acknowledged. It also serves the debug
// and registration HTTP API of `bowline discovery`.
//
// It imports config, registry, model and the xds generators; it must not
// import proxy or cli.
package server

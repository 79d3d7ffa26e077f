// Package xdsconfig turns Envoy xDS v3 resources (Listener, RouteConfiguration,
// Cluster, ClusterLoadAssignment) into checked, immutable Go types that the
// Bowline proxy's data path consumes without re-validating anything.
//
// Every field the proxy does not implement is rejected with an error that names
// the resource and the field; the xDS client turns that error into a NACK.
// One file per resource type holds the types (type_*.go) and one the
// conversion (unmarshal_*.go), like grpc-go's xdsresource package.
//
// This package must not import the rest of the proxy, the control plane
// (internal/xds) or anything that does network I/O.
package xdsconfig

// Package xdsconfig turns Envoy xDS v3 resources (Listener, RouteConfiguration,
// Cluster, ClusterLoadAssignment) into checked, immutable Go types that the
// Bowline proxy's data path consumes without re-validating anything.
//
// Every field the proxy does not implement is rejected with an error that names
// the resource and the field; the xDS client turns that error into a NACK.
// One file per resource type holds the types (type_*.go) and one the
// conversion (unmarshal_*.go), like grpc-go's xdsresource package.
//
// Security filters (envoy.filters.http.rbac, envoy.filters.http.jwt_authn,
// envoy.filters.network.rbac) are compiled here with the pure engines
// internal/proxy/authz and internal/proxy/jwtauthn, so that their errors NACK.
//
// This package must not import the rest of the proxy (the two pure engines
// above excepted), the control plane (internal/xds) or anything that does
// network I/O.
package xdsconfig

// Package match holds the data plane's one implementation of Envoy's
// matcher building blocks, shared by routing (xdsconfig), RBAC (authz) and
// JWT (jwtauthn): today the proto field check every xDS converter runs.
// String, header, regex and metadata matchers move here next (issue 14).
//
// It is a leaf: it imports only protobuf and Envoy's API types, never another
// internal/proxy package.
package match

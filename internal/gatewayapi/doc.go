// Package gatewayapi turns Kubernetes Gateway API objects (GatewayClass,
// Gateway, HTTPRoute, GRPCRoute, ReferenceGrant) into the Istio Gateway and
// VirtualService configuration the rest of Bowline already serves, as
// istiod does, and computes their status conditions (Accepted, Programmed,
// ResolvedRefs with the spec's reasons).
//
// It owns the attachment rules (parentRefs, sectionName and port,
// allowedRoutes, hostname intersection), route precedence across routes,
// the mapping of filters and backendRefs, ReferenceGrant checks and GAMMA
// (an HTTPRoute whose parent is a Service shapes sidecar traffic to it).
// It imports config and registry only; model calls it.
package gatewayapi

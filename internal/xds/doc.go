// Package xds turns the mesh model into Envoy xDS v3 resources for one proxy:
// pure functions from (*model.Snapshot, *model.Proxy) to listeners, routes,
// clusters and endpoints in the shape docs/xds.md fixes, for sidecars,
// routers (gateways) and proxyless gRPC clients. The ADS server
// (internal/xds/server) calls GenerateCached with a Cache it owns (the same
// output as Generate, reusing work across proxies and mesh versions) and
// serves the result.
//
// It imports model, registry and the Envoy protos; it must not import the
// proxy, cli or config-loading code.
package xds

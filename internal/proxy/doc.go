// Package proxy is Bowline's data plane: it consumes validated xDS config from
// its xdsclient, turns it into immutable snapshots swapped atomically, and runs
// the listeners, the HTTP pipeline (fault, router with retries, timeouts,
// rewrites, redirects, direct responses, header edits), the TCP proxy, the
// clusters (load balancing, connection pools, circuit breaking, outlier
// detection), access logs, Istio standard metrics and the admin endpoint.
//
// It must not import the control plane (internal/xds) or the CLI; it reaches
// the control plane only over gRPC.
package proxy

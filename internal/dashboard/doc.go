// Package dashboard is Bowline's built-in web dashboard, served by the
// control plane on its debug address: it scrapes the Istio metrics
// (/stats/prometheus) of every connected proxy, keeps the last minutes of
// them in memory, and serves an embedded single-page app with its JSON API —
// the service graph (workloads and services, edges with request rate, error
// share, latency and mTLS), golden signals per service and workload, failed
// requests by response flag, the configuration in force with its validation
// and analysis problems, and each proxy's xDS sync state.
//
// It reads the configuration store and the registry (config, registry,
// config/analysis) and is fed the proxies' sync state by the command that
// wires it; it never imports the xds server or the proxy.
package dashboard

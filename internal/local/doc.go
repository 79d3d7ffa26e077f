// Package local implements `bowline up`: the whole mesh on one machine with no
// Kubernetes. It runs the control plane in-process, and for every replica of
// every Workload a sidecar (`bowline proxy`) and the app as child processes,
// registers each replica with the service registry, supervises the processes
// (restart with backoff) and writes the state file people and scripts read.
//
// It reaches the proxies only through the processes it starts and the xDS the
// control plane serves; it must not import internal/proxy.
package local

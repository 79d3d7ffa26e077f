// Package conformance runs the Kubernetes Gateway API conformance suite
// (sigs.k8s.io/gateway-api/conformance v1.6.3) against Bowline on the test
// cluster of `make kube-up`: `make conformance` runs TestConformance and
// writes the ConformanceReport under reports/. It is its own module, so
// that the suite's dependencies stay out of Bowline's go.mod.
package conformance

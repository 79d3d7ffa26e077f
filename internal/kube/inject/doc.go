// Package inject adds Bowline's sidecar to Kubernetes pods the way Istio's
// sidecar injector does: the same selection rules (namespace label
// istio-injection / istio.io/rev, pod label or annotation
// sidecar.istio.io/inject), the same annotations (traffic.sidecar.istio.io/*,
// sidecar.istio.io/proxyCPU and friends, proxy.istio.io/config,
// sidecar.istio.io/logLevel), the same container names (istio-init,
// istio-proxy), ports, volumes and environment, and the same probe rewriting
// (/app-health/CONTAINER/livez|readyz|startupz on the status port 15020).
//
// Injection is a pure function: Pod takes a pod, its owner and a Config and
// returns the injected pod; Patch turns the difference into the RFC 6902
// JSONPatch a mutating webhook answers with (Webhook, AdmissionReview v1), and
// File injects the pod templates in a YAML stream for `bowline kube-inject`.
// The webhook and kube-inject share Pod, so they produce the same result.
//
// The sidecar is `bowline proxy` reading its node metadata from the injected
// environment (POD_NAME, POD_NAMESPACE, INSTANCE_IP, SERVICE_ACCOUNT,
// ISTIO_META_*) and the downward-API files under /etc/istio/pod; the init
// container is `bowline iptables`, which installs internal/capture's rules.
//
// It imports only Kubernetes and Istio API types, never the rest of Bowline.
package inject

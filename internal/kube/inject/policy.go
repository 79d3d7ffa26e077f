package inject

import (
	"slices"

	"istio.io/api/annotation"
	"istio.io/api/label"
	corev1 "k8s.io/api/core/v1"
)

// LabelInjection is the namespace label that turns injection on
// ("enabled") or off ("disabled") for the default revision.
const LabelInjection = "istio-injection"

// IgnoredNamespaces are never injected (Istio's list).
var IgnoredNamespaces = []string{"kube-system", "kube-public", "kube-node-lease", "local-path-storage"}

// Selected reports whether the injector of revision rev (""/"default" for the
// default one) is called for a pod with podLabels in a namespace with
// nsLabels. It is the rule of Istio's MutatingWebhookConfiguration
// selectors (namespaceSelector + objectSelector, enableNamespacesByDefault
// off), which the API server applies before the webhook sees the pod:
//
//   - namespace istio-injection=enabled: injected unless the pod's label
//     sidecar.istio.io/inject is "false" (default revision only);
//   - namespace istio.io/rev=REV and no istio-injection label: injected by
//     REV's injector unless the pod label says "false";
//   - namespace with neither label: a pod labelled istio.io/rev=REV is
//     injected by REV's injector, a pod labelled sidecar.istio.io/inject=true
//     (and no istio.io/rev) by the default one;
//   - anything else (istio-injection=disabled, no labels at all): not
//     injected.
//
// The pod's sidecar.istio.io/inject annotation is checked afterwards, by
// Required.
func Selected(rev string, nsLabels, podLabels map[string]string) bool {
	if rev == "" {
		rev = "default"
	}
	podInject, podHasInject := podLabels[label.SidecarInject.Name]
	podOff := podHasInject && podInject == "false"
	nsInject, nsHasInject := nsLabels[LabelInjection]
	nsRev, nsHasRev := nsLabels[label.IoIstioRev.Name]
	podRev, podHasRev := podLabels[label.IoIstioRev.Name]
	switch {
	case nsHasInject:
		return rev == "default" && nsInject == "enabled" && !podOff
	case nsHasRev:
		return nsRev == rev && !podOff
	case podHasRev:
		return podRev == rev && !podOff
	default:
		return rev == "default" && podHasInject && podInject == "true"
	}
}

// Required reports whether pod, in namespace ns, gets a sidecar once the
// injector is called (the webhook's own policy check; kube-inject uses it
// alone), and when not, why. Host-network pods and Kubernetes' system
// namespaces are never injected; otherwise sidecar.istio.io/inject decides,
// the label before the annotation: "false" skips, anything else injects
// (Istio's injection policy "enabled").
func Required(pod *corev1.Pod, ns string) (bool, string) {
	if pod.Spec.HostNetwork {
		return false, "the pod uses host networking"
	}
	if slices.Contains(IgnoredNamespaces, ns) {
		return false, "namespace " + ns + " is never injected"
	}
	v, ok := pod.Labels[label.SidecarInject.Name]
	if !ok {
		v = pod.Annotations[annotation.SidecarInject.Name]
	}
	if v == "false" {
		return false, "sidecar injection is disabled (" + annotation.SidecarInject.Name + ": \"false\")"
	}
	return true, ""
}

package inject

import (
	"encoding/json"
	"fmt"
	"github.com/bowline-mesh/bowline/internal/telemetry"
	"slices"
	"strconv"
	"strings"

	"istio.io/api/annotation"
	"istio.io/api/label"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Owner is the workload a pod belongs to: its name becomes the sidecar's
// workload name (ISTIO_META_WORKLOAD_NAME, the canonical service default).
type Owner struct {
	// APIVersion and Kind of the workload ("apps/v1", "Deployment"), empty
	// for a bare pod.
	APIVersion, Kind string
	// Name and Namespace of the workload.
	Name, Namespace string
}

// OwnerOf derives the workload of a pod the API server is creating, as
// Istio does: a ReplicaSet with a pod-template-hash label stands for its
// Deployment, a Job created by a CronJob for the Job, any other controller
// for itself, a bare pod for the pod (its name, else its generateName
// without the trailing dash).
func OwnerOf(pod *corev1.Pod) Owner {
	o := Owner{Namespace: pod.Namespace, Name: podName(pod), APIVersion: "v1", Kind: "Pod"}
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return o
	}
	o.APIVersion, o.Kind, o.Name = ref.APIVersion, ref.Kind, ref.Name
	if ref.Kind == "ReplicaSet" {
		if h := pod.Labels["pod-template-hash"]; h != "" && strings.HasSuffix(ref.Name, "-"+h) {
			o.APIVersion, o.Kind, o.Name = "apps/v1", "Deployment", strings.TrimSuffix(ref.Name, "-"+h)
		}
	}
	return o
}

func podName(pod *corev1.Pod) string {
	if pod.Name != "" {
		return pod.Name
	}
	return strings.TrimSuffix(pod.GenerateName, "-")
}

// podMeta is the part of the pod the settings come from.
type podMeta struct {
	annotations map[string]string
}

// Status is the sidecar.istio.io/status annotation: what injection added,
// so that injecting again first removes it (injection is idempotent).
type Status struct {
	InitContainers []string `json:"initContainers,omitempty"`
	Containers     []string `json:"containers,omitempty"`
	Volumes        []string `json:"volumes,omitempty"`
	Revision       string   `json:"revision"`
}

// Pod returns pod with the sidecar injected; pod is not modified. owner names
// the workload (OwnerOf(pod) when empty). An annotation with a value the injector cannot honour is an error
// naming the annotation, the value and the reason.
func Pod(cfg Config, pod *corev1.Pod, owner Owner) (*corev1.Pod, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	out := strip(pod)
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	s, err := readSettings(cfg, &podMeta{annotations: out.Annotations})
	if err != nil {
		return nil, err
	}
	if owner.Name == "" {
		owner = OwnerOf(out)
	}
	apps := appContainerNames(out)

	// Labels and annotations (Istio's template).
	setDefault(out.Labels, label.SecurityTlsMode.Name, "istio")
	setDefault(out.Labels, label.ServiceCanonicalName.Name, telemetry.DefaultCanonicalName(out.Labels, owner.Name))
	setDefault(out.Labels, label.ServiceCanonicalRevision.Name,
		first(out.Labels["app.kubernetes.io/version"], out.Labels["version"], "latest"))
	out.Annotations[label.IoIstioRev.Name] = cfg.revision()
	if len(apps) > 0 {
		setDefault(out.Annotations, "kubectl.kubernetes.io/default-logs-container", apps[0])
		setDefault(out.Annotations, "kubectl.kubernetes.io/default-container", apps[0])
	}

	proxy := proxyContainer(cfg, s, out, owner)
	if err := mergePrometheus(cfg, s, out, proxy); err != nil {
		return nil, err
	}
	if s.rewrite && s.statusPort != 0 {
		probers, err := rewriteProbes(out, s.statusPort)
		if err != nil {
			return nil, err
		}
		if probers != "" {
			proxy.Env = append(proxy.Env, corev1.EnvVar{Name: EnvAppProbers, Value: probers})
		}
	}

	var inits []corev1.Container
	if s.intercept != "NONE" {
		inits = append(inits, initContainer(cfg, s))
	}
	if s.native {
		always := corev1.ContainerRestartPolicyAlways
		proxy.RestartPolicy = &always
		if s.statusPort != 0 {
			// As Istio's template: the pod's termination starts the
			// graceful drain; the sidecar's SIGTERM comes once the app
			// containers have exited.
			proxy.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{
				Command: []string{"bowline", "request", fmt.Sprintf("--debug-port=%d", s.statusPort), "POST", "drain"}}}}
		}
		// iptables first, then the proxy, then the app's own init
		// containers, which are then already in the mesh.
		out.Spec.InitContainers = append(append(inits, *proxy), out.Spec.InitContainers...)
	} else {
		// The app's init containers run before capture (nothing would
		// forward their traffic yet); the proxy goes last among the
		// containers unless it must start first.
		out.Spec.InitContainers = append(out.Spec.InitContainers, inits...)
		if s.hold {
			proxy.Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{
				Command: []string{"bowline", "wait", "--url", fmt.Sprintf("http://localhost:%d/healthz/ready", s.statusPort)}}}}
			out.Spec.Containers = append([]corev1.Container{*proxy}, out.Spec.Containers...)
		} else {
			out.Spec.Containers = append(out.Spec.Containers, *proxy)
		}
	}
	if s.intercept != "NONE" {
		out.Annotations[annotation.SidecarInterceptionMode.Name] = s.intercept
		recordCapture(out.Annotations, s)
	}
	out.Spec.Volumes = append(out.Spec.Volumes, volumes()...)

	st := Status{Revision: cfg.revision()}
	for _, c := range inits {
		st.InitContainers = append(st.InitContainers, c.Name)
	}
	if s.native {
		st.InitContainers = append(st.InitContainers, ProxyContainer)
	} else {
		st.Containers = []string{ProxyContainer}
	}
	for _, v := range volumes() {
		st.Volumes = append(st.Volumes, v.Name)
	}
	b, _ := json.Marshal(st)
	out.Annotations[annotation.SidecarStatus.Name] = string(b)
	return out, nil
}

// strip returns a deep copy of pod without what an earlier injection added
// (named by its sidecar.istio.io/status annotation).
func strip(pod *corev1.Pod) *corev1.Pod {
	out := pod.DeepCopy()
	out.ManagedFields = nil
	raw, ok := out.Annotations[annotation.SidecarStatus.Name]
	if !ok {
		return out
	}
	var st Status
	if json.Unmarshal([]byte(raw), &st) != nil {
		return out
	}
	out.Spec.InitContainers = slices.DeleteFunc(out.Spec.InitContainers, func(c corev1.Container) bool { return slices.Contains(st.InitContainers, c.Name) })
	out.Spec.Containers = slices.DeleteFunc(out.Spec.Containers, func(c corev1.Container) bool { return slices.Contains(st.Containers, c.Name) })
	out.Spec.Volumes = slices.DeleteFunc(out.Spec.Volumes, func(v corev1.Volume) bool { return slices.Contains(st.Volumes, v.Name) })
	delete(out.Annotations, annotation.SidecarStatus.Name)
	if out.Annotations["prometheus.io/port"] == strconv.Itoa(StatusPort) && out.Annotations["prometheus.io/path"] == "/stats/prometheus" {
		// Our own merge annotations; the app's settings are in the
		// removed sidecar's environment and cannot be recovered.
		delete(out.Annotations, "prometheus.io/port")
		delete(out.Annotations, "prometheus.io/path")
		delete(out.Annotations, "prometheus.io/scrape")
	}
	return out
}

// recordCapture writes the effective capture settings onto the pod, as
// Istio's template does, so that `kubectl get pod -o yaml` shows them.
func recordCapture(ann map[string]string, s *settings) {
	if s.includeIPRanges != "" {
		ann[annotation.SidecarTrafficIncludeOutboundIPRanges.Name] = s.includeIPRanges
	}
	if s.excludeIPRanges != "" {
		ann[annotation.SidecarTrafficExcludeOutboundIPRanges.Name] = s.excludeIPRanges
	}
	ann[annotation.SidecarTrafficIncludeInboundPorts.Name] = s.includeInboundPorts
	ann[annotation.SidecarTrafficExcludeInboundPorts.Name] = excludeInbound(s)
	if s.includeOutboundPorts != "" {
		ann[annotation.SidecarTrafficIncludeOutboundPorts.Name] = s.includeOutboundPorts
	}
	if s.excludeOutboundPorts != "" {
		ann[annotation.SidecarTrafficExcludeOutboundPorts.Name] = s.excludeOutboundPorts
	}
}

// excludeInbound is the configured exclusions plus the status port (never
// captured), as Istio records it.
func excludeInbound(s *settings) string {
	var ports []string
	for f := range strings.SplitSeq(s.excludeInboundPorts, ",") {
		if f = strings.TrimSpace(f); f != "" && !slices.Contains(ports, f) {
			ports = append(ports, f)
		}
	}
	if sp := strconv.Itoa(int(s.statusPort)); s.statusPort != 0 && !slices.Contains(ports, sp) {
		ports = append(ports, sp)
	}
	return strings.Join(ports, ",")
}

func appContainerNames(pod *corev1.Pod) []string {
	var out []string
	for _, c := range pod.Spec.Containers {
		if c.Name != ProxyContainer {
			out = append(out, c.Name)
		}
	}
	return out
}

func setDefault(m map[string]string, k, v string) {
	if _, ok := m[k]; !ok {
		m[k] = v
	}
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

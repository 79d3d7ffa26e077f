package inject

import (
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Prober is one app probe as the sidecar runs it for the kubelet (Istio's
// ISTIO_KUBE_APP_PROBERS entry): exactly one of HTTPGet, TCPSocket and GRPC,
// with the probe's timeout. Named ports are already resolved to numbers.
type Prober struct {
	HTTPGet        *corev1.HTTPGetAction   `json:"httpGet,omitempty"`
	TCPSocket      *corev1.TCPSocketAction `json:"tcpSocket,omitempty"`
	GRPC           *corev1.GRPCAction      `json:"grpc,omitempty"`
	TimeoutSeconds int32                   `json:"timeoutSeconds,omitempty"`
}

// AppProbePath is the sidecar path that runs container's probe of the given
// kind ("readyz", "livez" or "startupz").
func AppProbePath(container, kind string) string {
	return "/app-health/" + container + "/" + kind
}

// rewriteProbes points the app containers' HTTP, TCP and gRPC probes at the
// sidecar's status port, as Istio's rewriteAppHTTPProbers does (a kubelet
// probe cannot pass STRICT mTLS, the sidecar's own probe of the app on
// loopback can), and returns the originals as ISTIO_KUBE_APP_PROBERS ("" when
// there are none).
func rewriteProbes(pod *corev1.Pod, statusPort int32) (string, error) {
	probers := map[string]*Prober{}
	rewrite := func(c *corev1.Container, p *corev1.Probe, kind string) error {
		if p == nil {
			return nil
		}
		ports := map[string]int32{}
		for _, cp := range c.Ports {
			if cp.Name != "" {
				ports[cp.Name] = cp.ContainerPort
			}
		}
		resolve := func(port *intstr.IntOrString, field string) (bool, error) {
			if port.Type == intstr.String {
				n, ok := ports[port.StrVal]
				if !ok {
					return false, fmt.Errorf("container %q: %s probe: field %s: no container port is named %q", c.Name, kind, field, port.StrVal)
				}
				*port = intstr.FromInt32(n)
			}
			return port.IntVal != statusPort, nil // already rewritten when it is the status port
		}
		pr := &Prober{TimeoutSeconds: p.TimeoutSeconds}
		switch {
		case p.HTTPGet != nil:
			h := p.HTTPGet.DeepCopy()
			ok, err := resolve(&h.Port, "httpGet.port")
			if err != nil || !ok {
				return err
			}
			pr.HTTPGet = h
		case p.TCPSocket != nil:
			t := p.TCPSocket.DeepCopy()
			ok, err := resolve(&t.Port, "tcpSocket.port")
			if err != nil || !ok {
				return err
			}
			pr.TCPSocket = t
		case p.GRPC != nil:
			pr.GRPC = p.GRPC.DeepCopy()
		default:
			return nil // exec probes run in the app container: nothing to do
		}
		path := AppProbePath(c.Name, kind)
		probers[path] = pr
		// Kubelet -> HTTP -> sidecar -> (HTTP|HTTPS|TCP|gRPC) -> app.
		p.HTTPGet = &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(statusPort)}
		if pr.HTTPGet != nil {
			p.HTTPGet.HTTPHeaders = pr.HTTPGet.HTTPHeaders
		}
		p.TCPSocket, p.GRPC = nil, nil
		return nil
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		if c.Name == ProxyContainer {
			continue
		}
		for _, k := range []struct {
			p    *corev1.Probe
			kind string
		}{{c.ReadinessProbe, "readyz"}, {c.LivenessProbe, "livez"}, {c.StartupProbe, "startupz"}} {
			if err := rewrite(c, k.p, k.kind); err != nil {
				return "", err
			}
		}
	}
	if len(probers) == 0 {
		return "", nil
	}
	b, err := json.Marshal(probers)
	if err != nil {
		return "", fmt.Errorf("encode app probes: %w", err)
	}
	return string(b), nil
}

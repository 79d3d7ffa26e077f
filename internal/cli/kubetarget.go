package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/bowline-mesh/bowline/internal/kube"
	"github.com/bowline-mesh/bowline/internal/kube/manifest"
)

// Ports the debugging commands reach inside pods through a port-forward
// (both are bound to the pod's loopback, as Istio binds them).
const (
	discoveryDebugPort = 8080  // bowline discovery --debug-address in the installed Deployment (istiod's debug port)
	proxyAdminPort     = 15000 // the proxy's admin endpoint, sidecar and gateway
)

// kubeTarget lets a debugging command reach a control plane or a proxy
// running in a cluster, as istioctl does: through a port-forward by the API
// server of the kubeconfig.
type kubeTarget struct {
	kubeconfig     string
	istioNamespace string
	namespace      string
}

func (k *kubeTarget) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&k.kubeconfig, "kubeconfig", "", "read the cluster of this kubeconfig (default when no bowline up runs: $KUBECONFIG, else ~/.kube/config, if present)")
	cmd.Flags().StringVarP(&k.istioNamespace, "istio-namespace", "i", manifest.DefaultNamespace, "namespace of the control plane in the cluster")
	cmd.Flags().StringVarP(&k.namespace, "namespace", "n", "", "on a cluster: namespace of a pod named without .NAMESPACE (default: the kubeconfig context's namespace, else default, as istioctl)")
}

// podNamespace is the namespace of a pod named without one: --namespace,
// else the kubeconfig context's, else "default".
func (k *kubeTarget) podNamespace() (string, error) {
	if k.namespace != "" {
		return k.namespace, nil
	}
	return kube.UserNamespace(k.kubeconfig)
}

// explicit reports whether --kubeconfig was given.
func (k *kubeTarget) explicit() bool { return k.kubeconfig != "" }

// available reports whether a cluster can be reached: --kubeconfig, or a
// kubeconfig kubectl would find.
func (k *kubeTarget) available() bool { return kubeconfigExists(k.kubeconfig) }

func (k *kubeTarget) clients() (*rest.Config, kubernetes.Interface, error) {
	cfg, err := clusterConfig(k.kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	return cfg, kc, nil
}

// forwardDiscovery port-forwards to the debug port of a ready discovery pod.
func (k *kubeTarget) forwardDiscovery(ctx context.Context) (*kube.Forward, error) {
	cfg, kc, err := k.clients()
	if err != nil {
		return nil, err
	}
	pod, err := kube.ReadyPod(ctx, kc, k.istioNamespace, "app=istiod")
	if err != nil {
		return nil, fmt.Errorf("find the control plane in %s: %w (is Bowline installed? bowline install)", cfg.Host, err)
	}
	return kube.PortForward(ctx, cfg, k.istioNamespace, pod, discoveryDebugPort)
}

// forwardProxy port-forwards to the admin port of the proxy named as
// istioctl names it: [pod/|deployment/]NAME[.NAMESPACE] (namespace default
// podNamespace); a bare NAME is a pod, else a Deployment of that name.
func (k *kubeTarget) forwardProxy(ctx context.Context, arg string) (*kube.Forward, error) {
	kind, name, ok := strings.Cut(arg, "/")
	if !ok {
		kind, name = "", arg
	}
	switch kind {
	case "", "pod", "po", "deployment", "deploy":
	default:
		return nil, &exitError{code: 2, err: fmt.Errorf("%q: want [pod/|deployment/]NAME[.NAMESPACE]", arg)}
	}
	name, ns, _ := strings.Cut(name, ".")
	if ns == "" {
		var err error
		if ns, err = k.podNamespace(); err != nil {
			return nil, err
		}
	}
	cfg, kc, err := k.clients()
	if err != nil {
		return nil, err
	}
	pod := name
	if kind != "pod" && kind != "po" {
		if kind == "" {
			if _, err := kc.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
				return kube.PortForward(ctx, cfg, ns, name, proxyAdminPort)
			}
		}
		d, err := kc.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, &exitError{code: 1, err: fmt.Errorf("no pod or Deployment %s in namespace %s of %s: %w", name, ns, cfg.Host, err)}
		}
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil {
			return nil, fmt.Errorf("deployment %s/%s: selector: %w", ns, name, err)
		}
		if pod, err = kube.ReadyPod(ctx, kc, ns, sel.String()); err != nil {
			return nil, &exitError{code: 1, err: fmt.Errorf("deployment %s/%s: %w", ns, name, err)}
		}
	}
	return kube.PortForward(ctx, cfg, ns, pod, proxyAdminPort)
}

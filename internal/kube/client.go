package kube

import (
	"errors"
	"fmt"
	"os"

	istioclient "istio.io/client-go/pkg/clientset/versioned"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// InCluster reports whether the process runs in a Kubernetes pod (the
// service account environment the kubelet provides is present).
func InCluster() bool {
	return os.Getenv("KUBERNETES_SERVICE_HOST") != "" && os.Getenv("KUBERNETES_SERVICE_PORT") != ""
}

// RESTConfig returns the client configuration of the cluster: from the
// kubeconfig file when given, else from the pod's service account.
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
		}
		return cfg, nil
	}
	if !InCluster() {
		return nil, errors.New("not running in a Kubernetes pod: give --kubeconfig")
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("in-cluster config: %w", err)
	}
	return cfg, nil
}

// UserKubeconfig returns the client configuration the way kubectl finds it
// ($KUBECONFIG, else ~/.kube/config), or explicit when not empty. The CLI's
// cluster commands (install, version, precheck) use it.
func UserKubeconfig(explicit string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = explicit
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return cfg, nil
}

// UserNamespace returns the namespace of the kubeconfig's current context
// the way kubectl finds it ($KUBECONFIG, else ~/.kube/config, or explicit
// when not empty), "default" when the context names none: what istioctl
// and kubectl use for a name given without a namespace.
func UserNamespace(explicit string) (string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = explicit
	ns, _, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).Namespace()
	if err != nil {
		return "", fmt.Errorf("kubeconfig: %w", err)
	}
	return ns, nil
}

// Clients are the typed clients discovery uses.
type Clients struct {
	Config  *rest.Config
	Kube    kubernetes.Interface
	Istio   istioclient.Interface
	Dynamic dynamic.Interface
}

// NewClients returns clients of the cluster of cfg.
func NewClients(cfg *rest.Config) (*Clients, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	ic, err := istioclient.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Clients{Config: cfg, Kube: kc, Istio: ic, Dynamic: dc}, nil
}

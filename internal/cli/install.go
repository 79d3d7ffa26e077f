package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/bowline-mesh/bowline/internal/kube"
	"github.com/bowline-mesh/bowline/internal/kube/manifest"
)

// manifestOptions are the flags shared by install, uninstall and manifest generate.
type manifestOptions struct {
	sets     []string
	revision string
}

func (o *manifestOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&o.sets, "set", nil, "override a value: hub=REGISTRY, tag=TAG, trustDomain=TD, gatewayServiceType=TYPE, writeStatus=false, enableAnalysis=true (repeatable)")
	cmd.Flags().StringVarP(&o.revision, "revision", "r", "", "control plane revision: names get a -REVISION suffix and the istio.io/rev label")
}

// options turns the flags into manifest options.
func (o *manifestOptions) options() (manifest.Options, error) {
	set := map[string]string{}
	for _, s := range o.sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return manifest.Options{}, fmt.Errorf("--set %q: want KEY=VALUE", s)
		}
		set[k] = v
	}
	if o.revision != "" {
		set["revision"] = o.revision
	}
	return manifest.Options{Version: version, Set: set}, nil
}

// clusterConfig finds the cluster the way kubectl does.
func clusterConfig(kubeconfig string) (*rest.Config, error) {
	cfg, err := kube.UserKubeconfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.Timeout = 30 * time.Second
	return cfg, nil
}

func newInstallCommand(s streams) *cobra.Command {
	o := &manifestOptions{}
	var yes bool
	var kubeconfig string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install Bowline's control plane and ingress gateway on a Kubernetes cluster",
		Long: `install puts Bowline on the cluster of the current kubeconfig context, like
'istioctl install': the istio-system namespace, Istio's CRDs (the same ones Istio
installs, so existing Istio objects apply unchanged), RBAC, the discovery
Deployment and Service istiod (xDS and CA over mTLS on 15012, the validation
webhook and the sidecar injector on 443), the validation and injection webhook
configurations (istio-validator-istio-system, istio-sidecar-injector) and the ingress gateway
istio-ingressgateway (label istio: ingressgateway). It then waits until discovery
and the gateway are ready, saying what it waits for. Running it again upgrades in
place (server-side apply).`,
		Example: `  # Install with the image of this version, without asking
  bowline install -y

  # Install an image from another registry
  bowline install -y --set hub=registry.example.com/mesh --set tag=v0.3.0

  # Also write Istio's analysis messages to the status of Istio objects
  # (kubectl get vs reviews -o jsonpath='{.status.validationMessages}')
  bowline install -y --set enableAnalysis=true

  # See what would be applied
  bowline manifest generate | less`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := o.options()
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			objs, err := manifest.Objects(opts)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			cfg, err := clusterConfig(kubeconfig)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if !yes {
				fmt.Fprintf(s.out, "This installs Bowline (%d objects) on the cluster at %s. Proceed? (y/N) ", len(objs), cfg.Host)
				if !confirmed(s) {
					return &exitError{code: 1, err: errors.New("install cancelled")}
				}
			}
			inst, err := kube.NewInstaller(cfg, s.out)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			if err := inst.Install(ctx, objs); err != nil {
				return err
			}
			fmt.Fprintln(s.out, "Bowline is installed and ready.")
			return nil
		},
	}
	o.addFlags(cmd)
	cmd.Flags().BoolVarP(&yes, "skip-confirmation", "y", false, "do not ask before installing")
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the control plane to be ready")
	return cmd
}

// confirmed reads a yes/no answer from standard input.
func confirmed(s streams) bool {
	if s.in == nil {
		return false
	}
	line, _ := bufio.NewReader(s.in).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}

func newUninstallCommand(s streams) *cobra.Command {
	o := &manifestOptions{}
	var yes, purge bool
	var kubeconfig string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove Bowline from a Kubernetes cluster",
		Long: `uninstall deletes the control plane install created (of --revision, else the
default one) and what discovery wrote: the gateway, discovery, the webhook
configuration, RBAC, the istio ConfigMap, the istio-ca-root-cert ConfigMap of every
namespace, the CA Secret, the leader Lease and the istio-system namespace. As
'istioctl uninstall --revision' does, it keeps Istio's CRDs and so every Istio
object (VirtualServices, ...); when another revision's control plane remains it
also keeps the namespace and the CA they share.

--purge removes everything, as 'istioctl uninstall --purge': also Istio's CRDs,
which deletes every Istio object in the cluster, and every cluster-scoped object
labelled app.kubernetes.io/part-of=bowline (webhook configurations, ClusterRoles
and bindings of any revision). Unlike istioctl, which leaves istio-system
behind, Bowline deletes the namespace it created. Sidecars already injected keep
running without a control plane.`,
		Example: `  # Remove the control plane, keep Istio's CRDs and your Istio objects
  bowline uninstall -y

  # Remove everything Bowline put on the cluster, CRDs and Istio objects included
  bowline uninstall -y --purge`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := o.options()
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			objs, err := manifest.Objects(opts)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			cfg, err := clusterConfig(kubeconfig)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if !yes {
				what := "Bowline's control plane"
				if purge {
					what = "Bowline and Istio's CRDs (every Istio object)"
				}
				fmt.Fprintf(s.out, "This removes %s from the cluster at %s. Proceed? (y/N) ", what, cfg.Host)
				if !confirmed(s) {
					return &exitError{code: 1, err: errors.New("uninstall cancelled")}
				}
			}
			inst, err := kube.NewInstaller(cfg, s.out)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			if err := inst.Uninstall(ctx, objs, kube.UninstallOptions{Namespace: manifest.DefaultNamespace, Purge: purge}); err != nil {
				return err
			}
			fmt.Fprintln(s.out, "Bowline is uninstalled.")
			return nil
		},
	}
	o.addFlags(cmd)
	cmd.Flags().BoolVarP(&yes, "skip-confirmation", "y", false, "do not ask before uninstalling")
	cmd.Flags().BoolVar(&purge, "purge", false, "also remove Istio's CRDs (and so every Istio object) and Bowline's cluster-scoped objects of every revision")
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the deletion")
	return cmd
}

func newManifestCommand(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "manifest",
		Short: "Work with the manifests install applies",
	}
	o := &manifestOptions{}
	gen := &cobra.Command{
		Use:   "generate",
		Short: "Print the YAML bowline install applies",
		Long: `generate prints every object install applies, in order, as one YAML stream
(the namespace, Istio's CRDs, then what the Helm chart renders), for review or
for GitOps: 'kubectl apply --server-side -f' of it is an install.`,
		Example: `  bowline manifest generate > bowline.yaml
  bowline manifest generate --set hub=registry.example.com/mesh --set tag=v0.3.0 | kubectl apply --server-side -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := o.options()
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			out, err := manifest.Generate(opts)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			_, err = s.out.Write(out)
			return err
		},
	}
	o.addFlags(gen)
	cmd.AddCommand(gen)
	return cmd
}

func newXCommand(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "x",
		Short: "Experimental commands",
	}
	var kubeconfig string
	pre := &cobra.Command{
		Use:   "precheck",
		Short: "Check that Bowline can be installed on the cluster",
		Long: `precheck checks the cluster of the current kubeconfig context before an install:
its Kubernetes version, your permission to create every kind install applies, and
that no other control plane (Istio's istiod) is installed under the same names.
Exit status 1 when a check fails.`,
		Example: `  bowline x precheck`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			objs, err := manifest.Objects(manifest.Options{Version: version})
			if err != nil {
				return err
			}
			cfg, err := clusterConfig(kubeconfig)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			kc, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return err
			}
			checks, err := kube.Precheck(cmd.Context(), kc, objs)
			if err != nil {
				return err
			}
			failed := false
			for _, c := range checks {
				mark := "ok  "
				if !c.OK {
					mark, failed = "FAIL", true
				}
				fmt.Fprintf(s.out, "%s %s: %s\n", mark, c.Name, c.Detail)
			}
			if failed {
				return &exitError{code: 1}
			}
			fmt.Fprintln(s.out, "No problems found: bowline install can proceed.")
			return nil
		},
	}
	pre.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
	cmd.AddCommand(pre, newDescribeCommand(s))
	return cmd
}

// kubeconfigExists reports whether kubectl would find a kubeconfig.
func kubeconfigExists(explicit string) bool {
	if explicit != "" {
		return true
	}
	if env := os.Getenv(clientcmd.RecommendedConfigPathEnvVar); env != "" {
		for _, p := range filepath.SplitList(env) {
			if _, err := os.Stat(p); err == nil {
				return true
			}
		}
		return false
	}
	_, err := os.Stat(clientcmd.RecommendedHomeFile)
	return err == nil
}

// remoteVersions prints the control and data plane versions of the cluster.
func remoteVersions(ctx context.Context, s streams, kubeconfig string) error {
	cfg, err := clusterConfig(kubeconfig)
	if err != nil {
		return err
	}
	cfg.Timeout = 10 * time.Second
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	v, err := kube.ClusterVersions(ctx, kc)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.out, "control plane version: %s\n", versionList(v.ControlPlane, "discovery"))
	fmt.Fprintf(s.out, "data plane version: %s\n", versionList(v.DataPlane, "proxies"))
	return nil
}

// versionList renders tag counts: "v1 (2 proxies), v2 (1 proxies)", or "none".
func versionList(m map[string]int, what string) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, tag := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s (%d %s)", tag, m[tag], what))
	}
	return strings.Join(parts, ", ")
}

package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/bowline-mesh/bowline/internal/kube/inject"
)

// defaultImage is the bowline image of this build, as make images tags it
// and bowline install deploys it (the chart's default hub).
func defaultImage() string { return "docker.io/bowline-mesh/bowline:" + version }

func newKubeInjectCommand(s streams) *cobra.Command {
	var (
		file, output, meshFile string
		classic                bool
		cfg                    = inject.Defaults(defaultImage())
	)
	cmd := &cobra.Command{
		Use:   "kube-inject",
		Short: "Add the Bowline sidecar to the pod templates of Kubernetes YAML, as the injection webhook would",
		Long: `kube-inject reads Kubernetes YAML (one or more documents, or a List) and writes it
back with the sidecar injected into every Pod, Deployment, StatefulSet, DaemonSet,
ReplicaSet, ReplicationController, Job and CronJob, exactly as the mutating webhook
injects pods: an istio-init container running "bowline iptables", the istio-proxy
sidecar (a native sidecar unless --classic or the pod's sidecar.istio.io/nativeSidecar
annotation says otherwise), Istio's annotations honoured and probes rewritten to
/app-health/... on port 15020. Workloads with sidecar.istio.io/inject "false" or host
networking are copied unchanged, with a note on stderr; other objects are copied as they are.`,
		Example: `  # Inject Istio's Bookinfo and apply it
  bowline kube-inject -f samples/bookinfo/platform/kube/bookinfo.yaml | kubectl apply -f -

  # From stdin to a file, with a mesh config and a given image
  kubectl get deploy reviews-v1 -o yaml | bowline kube-inject -f - -o reviews-injected.yaml \
    --mesh-config mesh.yaml --image registry.example.com/bowline:v0.2.0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return &exitError{code: 2, err: fmt.Errorf("no input: give -f FILE (or - for stdin)")}
			}
			var in io.Reader = s.in
			if file != "-" {
				f, err := os.Open(file)
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				defer f.Close()
				in = f
			}
			if meshFile != "" {
				b, err := os.ReadFile(meshFile)
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				m, err := inject.ParseMeshConfig(b)
				if err != nil {
					return &exitError{code: 2, err: fmt.Errorf("--mesh-config %s: %w", meshFile, err)}
				}
				cfg.Mesh = m
			}
			cfg.NativeSidecar = !classic
			var out bytes.Buffer
			warn := func(msg string) { fmt.Fprintln(s.err, msg) }
			if err := inject.File(cfg, in, &out, warn); err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			if output == "" {
				_, err := s.out.Write(out.Bytes())
				return err
			}
			return os.WriteFile(output, out.Bytes(), 0o644)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "filename", "f", "", "Kubernetes YAML to inject (- for stdin)")
	f.StringVarP(&output, "output", "o", "", "write the result to this file instead of stdout")
	f.StringVar(&meshFile, "mesh-config", "", "MeshConfig YAML (the istio ConfigMap's data.mesh); its defaultConfig is the proxy config the pods' proxy.istio.io/config annotations merge onto")
	f.StringVar(&cfg.Image, "image", cfg.Image, "bowline image for the sidecar and the init container")
	f.StringVar((*string)(&cfg.ImagePullPolicy), "image-pull-policy", "", "imagePullPolicy of the injected containers (default: Kubernetes' default)")
	f.StringVar(&cfg.Revision, "revision", "", "control plane revision the pods are injected for (istio.io/rev)")
	f.BoolVar(&classic, "classic", false, "inject the proxy as a regular container (for clusters without native sidecars) instead of an init container with restartPolicy Always")
	return cmd
}

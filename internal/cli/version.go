package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Set at link time: -ldflags "-X github.com/bowline-mesh/bowline/internal/cli.version=v0.1.0 -X ...commit=abc".
var (
	version = "dev"
	commit  = ""
)

// buildCommit returns the commit given at link time, else the VCS revision Go
// recorded, else "unknown".
func buildCommit() string {
	if commit != "" {
		return commit
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

func newVersionCommand(s streams) *cobra.Command {
	var remote bool
	var kubeconfig string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary, and of the control and data plane in the cluster",
		Long: `version prints the version, commit and Go version of this binary. When a
kubeconfig is found (--kubeconfig, $KUBECONFIG or ~/.kube/config) it also prints the
versions (image tags) of the discovery pods and of the proxies running in that
cluster, like 'istioctl version'; --remote=false skips the cluster.`,
		Example: "  bowline version\n  bowline version --remote=false",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(s.out, "bowline version %s\ncommit: %s\ngo: %s %s/%s\n",
				version, buildCommit(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			if !remote || !kubeconfigExists(kubeconfig) {
				return nil
			}
			if err := remoteVersions(cmd.Context(), s, kubeconfig); err != nil {
				fmt.Fprintf(s.out, "control plane version: unknown (%v)\n", err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&remote, "remote", true, "also print the versions running in the cluster")
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
	return cmd
}

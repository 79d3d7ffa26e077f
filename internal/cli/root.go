package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code through cobra without printing twice.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// streams are the process's standard streams, injected so commands are testable.
type streams struct {
	in  io.Reader
	out io.Writer
	err io.Writer
}

// Main runs the bowline command line with args (without the program name) and
// returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCommand(streams{in: stdin, out: stdout, err: stderr})
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "error:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "error:", err)
	return 1
}

func newRootCommand(s streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "bowline",
		Short: "Bowline is a service mesh that speaks Istio's configuration, in one Go binary",
		Long: `Bowline is a service mesh written in Go. It accepts Istio's configuration YAML
unchanged, serves Envoy xDS v3 from its control plane, and runs its own proxy as
sidecar and gateway — on one machine, on plain hosts, or on Kubernetes.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newVersionCommand(s),
		newProxyCommand(s),
		newValidateCommand(s),
		newUpCommand(s),
		newStatusCommand(s),
		newAnalyzeCommand(s),
		newDiscoveryCommand(s),
		newProxyStatusCommand(s),
		newCACommand(s),
		newProxyConfigCommand(s),
		newKubeInjectCommand(s),
		newIPTablesCommand(s),
		newInstallCommand(s),
		newUninstallCommand(s),
		newManifestCommand(s),
		newXCommand(s),
		newWaitCommand(s),
		newRequestCommand(s),
		newDashboardCommand(s),
	)
	return root
}

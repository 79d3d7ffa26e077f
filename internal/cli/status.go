package cli

import (
	"fmt"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bowline-mesh/bowline/internal/local"
)

func newStatusCommand(s streams) *cobra.Command {
	var stateDir string
	cmd := &cobra.Command{
		Use:   "status [DIR]",
		Short: "Show what `bowline up` is running: replicas, ports, sidecars and the ingress URL",
		Long: `Status reads the state file that bowline up writes (DIR/.bowline/up.json, or
--state-dir) and prints one row per replica with its app port, sidecar inbound port,
outbound proxy and admin address, followed by the control plane and ingress addresses.`,
		Example: `  bowline status samples/bookinfo/platform/local
  bowline status --state-dir /tmp/mesh-state`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := stateDir
			if dir == "" {
				base := "."
				if len(args) == 1 {
					base = args[0]
				}
				dir = filepath.Join(base, ".bowline")
			}
			st, err := local.ReadState(dir)
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("%w (is bowline up running here?)", err)}
			}
			printStatus(s, st)
			return nil
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "state directory of bowline up (default DIR/.bowline)")
	return cmd
}

func printStatus(s streams, st *local.State) {
	tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tREPLICA\tWORKLOAD\tAPP PORT\tINBOUND\tOUTBOUND PROXY\tADMIN")
	for _, w := range st.Workloads {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", w.Namespace, w.Name, w.Workload, w.AppPort, w.InboundPort, w.OutboundProxy, w.Admin)
	}
	tw.Flush()
	fmt.Fprintf(s.out, "\ncontrol plane: xds %s, debug http://%s\n", st.ControlPlane.XDS, st.ControlPlane.Debug)
	if st.Ingress != "" {
		fmt.Fprintf(s.out, "ingress: %s (admin %s)\n", st.Ingress, st.IngressAdmin)
	} else {
		fmt.Fprintln(s.out, "ingress: none (no Gateway selects istio: ingressgateway)")
	}
}

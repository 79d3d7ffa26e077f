package cli

import (
	"fmt"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/bowline-mesh/bowline/internal/gatewayapi"
	"github.com/bowline-mesh/bowline/internal/local"
)

func newStatusCommand(s streams) *cobra.Command {
	var stateDir string
	cmd := &cobra.Command{
		Use:   "status [DIR]",
		Short: "Show what `bowline up` is running: replicas, ports, sidecars, the ingress URL and Gateway API status",
		Long: `Status reads the state file that bowline up writes (DIR/.bowline/up.json, or
--state-dir) and prints one row per replica with its app port, sidecar inbound port,
outbound proxy and admin address, followed by the control plane and ingress addresses
and, when the directory holds Gateway API objects of class istio, their status
conditions (Accepted, Programmed, ResolvedRefs with the spec's reasons) per Gateway,
listener and route parent.`,
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
	printGatewayAPIStatus(s, st.GatewayAPI)
}

// printGatewayAPIStatus lists the conditions of the Gateway API objects,
// one row per condition (a route's per parentRef), as kubectl shows them.
func printGatewayAPIStatus(s streams, sts []gatewayapi.Status) {
	if len(sts) == 0 {
		return
	}
	fmt.Fprintln(s.out)
	tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAME\tPARENT/LISTENER\tCONDITION\tSTATUS\tREASON\tMESSAGE")
	row := func(st gatewayapi.Status, where string, c metav1.Condition) {
		name := st.Name
		if st.Namespace != "" {
			name = st.Namespace + "/" + st.Name
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", st.Kind, name, where, c.Type, c.Status, c.Reason, c.Message)
	}
	for _, st := range sts {
		for _, c := range st.Conditions {
			row(st, "-", c)
		}
		for _, l := range st.Listeners {
			for _, c := range l.Conditions {
				row(st, fmt.Sprintf("%s (%d routes)", l.Name, l.AttachedRoutes), c)
			}
		}
		for _, p := range st.Parents {
			for _, c := range p.Conditions {
				row(st, parentRefString(p.ParentRef), c)
			}
		}
	}
	tw.Flush()
}

// parentRefString names a parentRef: "Gateway web/sectionName", "Service reviews:9080".
func parentRefString(r gwv1.ParentReference) string {
	kind := "Gateway"
	if r.Kind != nil {
		kind = string(*r.Kind)
	}
	out := kind + " "
	if r.Namespace != nil {
		out += string(*r.Namespace) + "/"
	}
	out += string(r.Name)
	if r.SectionName != nil {
		out += "/" + string(*r.SectionName)
	}
	if r.Port != nil {
		out += fmt.Sprintf(":%d", *r.Port)
	}
	return out
}

package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bowline-mesh/bowline/internal/capture"
)

func newIPTablesCommand(s streams) *cobra.Command {
	var (
		a      capture.IstioArgs
		netns  string
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "iptables",
		Short: "Install the sidecar's traffic capture rules in this network namespace (the pod's istio-init step)",
		Long: `iptables installs the nat rules that send a pod's TCP traffic through its sidecar:
inbound to 15006, outbound to 15001, the sidecar's own traffic (uid/gid 1337) and
connections from 127.0.0.6 (its inbound passthrough) left alone. They are the rules
"bowline up --netns" installs (internal/capture), with Istio's chain names. The flags are
istio-iptables' (the injector writes them from the pod's traffic.sidecar.istio.io/*
annotations). It needs NET_ADMIN and iptables-restore; running it again replaces the rules.`,
		Example: `  # What the injected istio-init container runs for a pod without traffic annotations
  bowline iptables -p 15001 -z 15006 -u 1337 -g 1337 -m REDIRECT -i '*' -x "" -b '*' -d 15090,15021,15020

  # Only capture traffic to the cluster's ranges, and print the rules instead of installing them
  bowline iptables -i 10.96.0.0/12,10.244.0.0/16 -o 5432 --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.Config()
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if dryRun {
				_, err := fmt.Fprint(s.out, capture.Script(c))
				return err
			}
			ap := capture.Applier{Netns: netns}
			if err := ap.Apply(cmd.Context(), c); err != nil {
				return err
			}
			rules, err := ap.List(cmd.Context())
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(s.out, rules)
			return err
		},
	}
	f := cmd.Flags()
	f.Uint16VarP(&a.OutboundPort, "envoy-port", "p", capture.DefaultOutboundPort, "port captured outbound TCP is redirected to")
	f.Uint16VarP(&a.InboundPort, "inbound-capture-port", "z", capture.DefaultInboundPort, "port captured inbound TCP is redirected to")
	f.Uint32VarP(&a.ProxyUID, "proxy-uid", "u", capture.DefaultProxyUID, "uid of the sidecar, whose traffic is not captured")
	f.Uint32VarP(&a.ProxyGID, "proxy-gid", "g", capture.DefaultProxyGID, "gid of the sidecar, whose traffic is not captured")
	f.StringVarP(&a.InterceptionMode, "istio-inbound-interception-mode", "m", "REDIRECT", "inbound interception mode (only REDIRECT)")
	f.StringVarP(&a.IncludeOutboundIPRanges, "istio-service-cidr", "i", "*", `outbound destinations captured: CIDRs, "*" for all, "" for none`)
	f.StringVarP(&a.ExcludeOutboundIPRanges, "istio-service-exclude-cidr", "x", "", "outbound destinations never captured (CIDRs)")
	f.StringVarP(&a.IncludeInboundPorts, "istio-inbound-ports", "b", "*", `inbound ports captured: ports, "*" for all, "" for none`)
	f.StringVarP(&a.ExcludeInboundPorts, "istio-local-exclude-ports", "d", "15090,15021,15020", "inbound ports never captured")
	f.StringVarP(&a.IncludeOutboundPorts, "istio-include-outbound-ports", "q", "", "outbound ports always captured")
	f.StringVarP(&a.ExcludeOutboundPorts, "istio-local-outbound-ports-exclude", "o", "", "outbound ports never captured")
	f.StringVar(&netns, "netns", "", "named network namespace (ip netns) to install into instead of the current one")
	f.BoolVar(&dryRun, "dry-run", false, "print the iptables-restore input instead of installing it")
	return cmd
}

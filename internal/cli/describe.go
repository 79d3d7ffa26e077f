package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bowline-mesh/bowline/internal/describe"
	"github.com/bowline-mesh/bowline/internal/xds/server"
)

func newDescribeCommand(s streams) *cobra.Command {
	var (
		debugAddr string
		timeout   time.Duration
		loc       upLocator
		k         kubeTarget
	)
	cmd := &cobra.Command{
		Use:   "describe pod|workload|service NAME[.NAMESPACE]",
		Short: "Describe the mesh configuration in force for a pod, workload or service",
		Long: `describe explains, like istioctl x describe, what the control plane applies to one
pod (a bowline up replica such as reviews-v1-0, or a Kubernetes pod), workload (a
bowline up Workload or the pods of a Deployment) or service:
  - the services the pod is an endpoint of, with their ports and the pod ports they target;
  - the DestinationRule its clients use (matching subsets, TLS mode, load balancer,
    connection pool, outlier detection);
  - the VirtualServices for each service, every route with its match and where it sends
    requests, marking the destinations that reach this pod (and a WARNING when none does);
  - the mTLS mode the pod's sidecar runs (STRICT, PERMISSIVE, DISABLE) and the
    PeerAuthentications that decided it, what its clients send, and a WARNING when the
    two cannot talk;
  - the AuthorizationPolicies that select it (CUSTOM, DENY, then ALLOW), what each rule
    matches, and whether unmatched requests are denied;
  - the Gateways whose VirtualServices route to it, with their servers and routes.
A service is described as its clients see it, with the policy of each workload behind it.
A gateway pod (istio-ingressgateway) is described by the Gateways it serves: their servers,
the VirtualServices bound to each with their routes, and its authorization policies.

The description comes from the control plane's mesh model (GET /debug/describez on its
debug address), found as bowline proxy-status finds it: the bowline up running here or
on this machine, else the cluster of --kubeconfig, $KUBECONFIG or ~/.kube/config (a
port-forward to istiod), else a bowline discovery on its default debug address.`,
		Example: `  # A replica of the bowline up running on this machine
  bowline x describe pod reviews-v1-0

  # Every replica of a Workload, and a service
  bowline x describe workload reviews-v2.default
  bowline x describe service reviews
  bowline x describe pod istio-ingressgateway.istio-system

  # A pod on the cluster bowline install installed into
  bowline x describe pod productpage-v1-6b746f74dc-9stvs.default --kubeconfig ~/.kube/config`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind := args[0]
			switch kind {
			case "po", "pods":
				kind = describe.KindPod
			case "svc", "services":
				kind = describe.KindService
			case "workloads", "deployment", "deploy":
				kind = describe.KindWorkload
			}
			if kind != describe.KindPod && kind != describe.KindWorkload && kind != describe.KindService {
				return &exitError{code: 2, err: fmt.Errorf("%q: want pod, workload or service", args[0])}
			}
			name, ns, _ := strings.Cut(args[1], ".")
			if kind == describe.KindService && strings.Count(args[1], ".") > 1 {
				name, ns = args[1], "" // a hostname
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			if !cmd.Flags().Changed("debug-address") {
				addr, done, err := findDiscovery(ctx, &loc, &k)
				if err != nil {
					return err
				}
				defer done()
				if addr != "" {
					debugAddr = addr
				}
				if ns == "" && kind != describe.KindService && onCluster(&loc, &k) {
					// A pod or workload named without .NAMESPACE: the
					// context's namespace (or --namespace), as istioctl.
					if ns, err = k.podNamespace(); err != nil {
						return err
					}
				}
			}
			text, err := fetchDescription(ctx, debugAddr, describe.Target{Kind: kind, Name: name, Namespace: ns})
			if err != nil {
				return err
			}
			_, err = io.WriteString(s.out, text)
			return err
		},
	}
	cmd.Flags().StringVar(&debugAddr, "debug-address", server.DefaultDebugAddress, "HOST:PORT of the control plane's debug server (default: the running bowline up's, else bowline discovery's)")
	loc.flags(cmd)
	k.flags(cmd)
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the control plane")
	return cmd
}

// fetchDescription asks the control plane at addr to describe t. A target
// the mesh does not know is exit status 1 with the control plane's message.
func fetchDescription(ctx context.Context, addr string, t describe.Target) (string, error) {
	u := "http://" + addr + "/debug/describez?" + url.Values{"kind": {t.Kind}, "name": {t.Name}, "namespace": {t.Namespace}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("fetch %s: %w", u, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("fetch %s (is bowline discovery running?): %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", u, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return string(body), nil
	case http.StatusNotFound, http.StatusBadRequest:
		return "", &exitError{code: 1, err: fmt.Errorf("%s", strings.TrimSpace(string(body)))}
	}
	return "", fmt.Errorf("fetch %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
}

package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bowline-mesh/bowline/internal/xds/server"
)

// Sync states shown per xDS type, as istioctl proxy-status prints them.
const (
	syncSynced  = "SYNCED"
	syncStale   = "STALE"
	syncNACK    = "NACK"
	syncNotSent = "NOT SENT"
)

func newProxyStatusCommand(s streams) *cobra.Command {
	var (
		debugAddr string
		timeout   time.Duration
		loc       upLocator
		k         kubeTarget
	)
	cmd := &cobra.Command{
		Use:   "proxy-status [PROXY-ID]",
		Short: "Show whether each connected proxy has the configuration the control plane sent",
		Long: `proxy-status reads /debug/syncz from 'bowline discovery' and prints one row per
connected proxy, like istioctl proxy-status. For CDS, LDS, EDS and RDS it shows:
  SYNCED    the proxy acknowledged the last version sent
  STALE     a version was sent and not acknowledged yet
  NACK      the proxy rejected the last version sent (its error is in the detail view)
  NOT SENT  nothing of that type was sent (the proxy did not ask, or there is none)
Given a PROXY-ID (or a unique part of one) it prints that proxy's versions, nonces and NACK errors;
on a cluster a pod named without .NAMESPACE is looked up in --namespace, else in the
kubeconfig context's namespace (as istioctl), before matching parts of ids.

Without --debug-address it asks the control plane of the bowline up running in this
directory (./.bowline), else of the only bowline up running on this machine (each run
registers its state directory in $XDG_RUNTIME_DIR/bowline/up, or
/tmp/bowline-UID/up, and holds a lock on it while it runs), else the control
plane of the cluster of --kubeconfig, $KUBECONFIG or ~/.kube/config (a
port-forward to a ready istiod pod's debug port 8080, as istioctl does), else a
bowline discovery on its default debug address.`,
		Example: `  # All proxies of the bowline up running on this machine
  bowline proxy-status

  # Of the bowline up running in another directory
  bowline proxy-status --dir samples/bookinfo/platform/local

  # The control plane installed on a cluster (bowline install)
  bowline proxy-status --kubeconfig ~/.kube/config

  # One pod of the context's namespace in detail (kubectl config set-context --current --namespace bookinfo)
  bowline proxy-status productpage-v1-6d8f9c7b5-x2x7q

  # Another control plane, and one proxy in detail
  bowline proxy-status --debug-address 127.0.0.1:25014 reviews-v1.default`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			podNS := ""
			if !cmd.Flags().Changed("debug-address") {
				addr, done, err := findDiscovery(ctx, &loc, &k)
				if err != nil {
					return err
				}
				defer done()
				if addr != "" {
					debugAddr = addr
				}
				if len(args) == 1 && !strings.Contains(args[0], ".") && onCluster(&loc, &k) {
					// A pod named as istioctl names it: POD in the
					// context's namespace (or --namespace).
					if podNS, err = k.podNamespace(); err != nil {
						return err
					}
				}
			}
			sz, err := fetchSyncz(ctx, debugAddr)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				return writeProxyDetail(s.out, sz, qualifyProxy(sz, args[0], podNS))
			}
			return writeProxyStatus(s.out, sz)
		},
	}
	cmd.Flags().StringVar(&debugAddr, "debug-address", server.DefaultDebugAddress, "HOST:PORT of the control plane's debug server (default: the running bowline up's, else bowline discovery's)")
	loc.flags(cmd)
	k.flags(cmd)
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for the control plane")
	return cmd
}

// findDiscovery finds the debug address of the control plane a debugging
// command talks to when --debug-address is not given: the bowline up of loc,
// else a port-forward to the istiod of k's cluster (close it with done),
// else "" (a bowline discovery on its default address).
// onCluster reports whether findDiscovery reaches the control plane of a
// cluster (no bowline up, or --kubeconfig given, and a kubeconfig found).
func onCluster(loc *upLocator, k *kubeTarget) bool {
	if k.explicit() {
		return true
	}
	_, err := loc.find()
	return errors.Is(err, errNoUp) && k.available()
}

func findDiscovery(ctx context.Context, loc *upLocator, k *kubeTarget) (addr string, done func(), err error) {
	st, err := loc.find()
	if k.explicit() {
		err = errNoUp
	}
	switch {
	case err == nil:
		return st.ControlPlane.Debug, func() {}, nil
	case errors.Is(err, errNoUp) && k.available():
		fw, err := k.forwardDiscovery(ctx)
		if err != nil {
			return "", nil, err
		}
		return fw.Addr, func() { fw.Close() }, nil
	case errors.Is(err, errNoUp):
		return "", func() {}, nil
	}
	return "", nil, err
}

func fetchSyncz(ctx context.Context, addr string) (*server.Syncz, error) {
	url := "http://" + addr + "/debug/syncz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s (is bowline discovery running?): %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("fetch %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	var sz server.Syncz
	if err := json.NewDecoder(resp.Body).Decode(&sz); err != nil {
		return nil, fmt.Errorf("decode %s: %w", url, err)
	}
	return &sz, nil
}

// syncState is the column value for one type of one proxy.
func syncState(ts server.TypeStatus, ok bool) string {
	switch {
	case !ok || ts.Sent == "":
		return syncNotSent
	case ts.NACK != "":
		return syncNACK
	case ts.Sent == ts.Acked:
		return syncSynced
	default:
		return syncStale
	}
}

// proxyName is the workload.namespace part of an Istio-form node id, as
// istioctl names proxies by pod.namespace; other ids are shown whole.
func proxyName(id string) string {
	parts := strings.Split(id, "~")
	if len(parts) == 4 {
		return parts[2]
	}
	return id
}

var statusTypes = []string{server.TypeCDS, server.TypeLDS, server.TypeEDS, server.TypeRDS}

func writeProxyStatus(w io.Writer, sz *server.Syncz) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCDS\tLDS\tEDS\tRDS\tISTIOD\tVERSION")
	for _, p := range sz.Proxies {
		row := []string{proxyName(p.ID)}
		for _, t := range statusTypes {
			ts, ok := p.Types[t]
			row = append(row, syncState(ts, ok))
		}
		row = append(row, sz.ControlPlane.ID, sz.ControlPlane.Version)
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// qualifyProxy returns the id of the proxy named query+"."+ns (a pod named
// without its namespace, in namespace ns: its id or, for a node id
// TYPE~IP~POD.NS~DOMAIN, the name proxy-status shows), else query.
func qualifyProxy(sz *server.Syncz, query, ns string) string {
	if ns == "" {
		return query
	}
	for _, p := range sz.Proxies {
		if p.ID == query+"."+ns || proxyName(p.ID) == query+"."+ns {
			return p.ID
		}
	}
	return query
}

func writeProxyDetail(w io.Writer, sz *server.Syncz, query string) error {
	var match []server.ProxyStatus
	for _, p := range sz.Proxies {
		if p.ID == query {
			match = []server.ProxyStatus{p}
			break
		}
		if strings.Contains(p.ID, query) {
			match = append(match, p)
		}
	}
	switch {
	case len(match) == 0:
		return &exitError{code: 1, err: fmt.Errorf("no connected proxy matches %q", query)}
	case len(match) > 1:
		ids := make([]string, len(match))
		for i, p := range match {
			ids[i] = p.ID
		}
		return &exitError{code: 1, err: fmt.Errorf("%q matches %d proxies: %s", query, len(match), strings.Join(ids, ", "))}
	}
	p := match[0]
	mode := "state of the world"
	if p.Delta {
		mode = "delta"
	}
	fmt.Fprintf(w, "Proxy:      %s\nType:       %s\nConnected:  %s (%s)\nControl:    %s %s\n\n",
		p.ID, p.Type, p.ConnectedSince.UTC().Format(time.RFC3339), mode, sz.ControlPlane.ID, sz.ControlPlane.Version)
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tSTATUS\tSENT\tACKED\tNONCE\tNACK")
	for _, t := range statusTypes {
		ts, ok := p.Types[t]
		nack := ts.NACK
		if nack == "" {
			nack = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t, syncState(ts, ok), dash(ts.Sent), dash(ts.Acked), dash(ts.Nonce), nack)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/bowline-mesh/bowline/internal/proxy"
)

func newProxyConfigCommand(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "proxy-config",
		Aliases: []string{"pc"},
		Short:   "Show the configuration a running proxy uses, from its admin endpoint",
		Long: `proxy-config reads a proxy's admin endpoint (/config_dump, /clusters, /logging,
/certs) and prints what it runs, like istioctl proxy-config: short tables with
istioctl's columns, or the resources as JSON or YAML (-o json|yaml).

The proxy is named as istioctl names pods, [pod/|deployment/]NAME[.NAMESPACE]: a
replica of the running bowline up (reviews-v1-0.default), a Workload with one
replica (reviews-v1), or istio-ingressgateway. The run is found as proxy-status
finds it (--dir, else the one in this directory, else the only one on the
machine). Without a bowline up (or with --kubeconfig) the proxy is a pod of the
cluster (NAME.NAMESPACE; without .NAMESPACE, --namespace, else the kubeconfig
context's namespace, else default, as istioctl; deployment/NAME picks a ready pod
of the Deployment), reached by a port-forward to its admin port 15000.
--admin HOST:PORT talks to any proxy's admin endpoint directly.`,
		Example: `  # The clusters, listeners and routes of the productpage sidecar
  bowline proxy-config cluster productpage-v1
  bowline proxy-config listener productpage-v1-0.default
  bowline proxy-config route istio-ingressgateway -o json

  # The routes of the ingress gateway bowline install put on a cluster
  bowline proxy-config route deployment/istio-ingressgateway.istio-system
  bowline proxy-config route deployment/istio-ingressgateway -n istio-system

  # Everything, as Envoy's config dump
  bowline proxy-config all reviews-v2 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return &exitError{code: 2, err: errors.New("name what to show: bootstrap, cluster, endpoint, listener, log, route, secret or all (see --help)")}
		},
	}
	cmd.AddCommand(newProxyConfigSecretCommand(s))
	for _, kind := range []string{"cluster", "listener", "route", "endpoint", "bootstrap", "log", "all"} {
		cmd.AddCommand(newProxyConfigDumpCommand(s, kind))
	}
	return cmd
}

// proxyConfigOptions are the flags the dump commands share.
type proxyConfigOptions struct {
	loc    upLocator
	kube   kubeTarget
	admin  string
	output string
	// filters
	fqdn, direction, subset, address, name, cluster, level string
	port                                                   int
}

var proxyConfigShort = map[string]string{
	"cluster":   "Show a proxy's clusters: service, port, subset, direction, type",
	"listener":  "Show a proxy's listeners: address, port, filter chain match and destination",
	"route":     "Show a proxy's routes: route config, virtual host, domains, match",
	"endpoint":  "Show a proxy's endpoints: address, health, outlier check, cluster",
	"bootstrap": "Show how a proxy was started, as Envoy's bootstrap: node, admin, ADS",
	"log":       "Show or set a proxy's log level",
	"all":       "Show a proxy's clusters, listeners, routes and endpoints",
}

func newProxyConfigDumpCommand(s streams, kind string) *cobra.Command {
	o := &proxyConfigOptions{}
	cmd := &cobra.Command{
		Use:   kind + " [POD-OR-WORKLOAD]",
		Short: proxyConfigShort[kind],
		Example: fmt.Sprintf(`  bowline proxy-config %[1]s productpage-v1
  bowline proxy-config %[1]s reviews-v2-0.default -o yaml
  bowline proxy-config %[1]s --admin 127.0.0.1:15000`, kind),
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runProxyConfig(cmd, s, o, kind, args)
		},
	}
	if kind != "bootstrap" && kind != "log" && kind != "all" {
		cmd.Aliases = []string{kind + "s"} // as istioctl: clusters, listeners, routes, endpoints
	}
	f := cmd.Flags()
	o.loc.flags(cmd)
	o.kube.flags(cmd)
	f.StringVar(&o.admin, "admin", "", "the proxy's admin address HOST:PORT (instead of naming a proxy of bowline up)")
	def := "short"
	if kind == "bootstrap" {
		def = "json"
	}
	if kind != "log" {
		f.StringVarP(&o.output, "output", "o", def, "output format: json, yaml or short")
	}
	switch kind {
	case "cluster":
		f.StringVar(&o.fqdn, "fqdn", "", "only clusters of this service FQDN (a prefix)")
		f.StringVar(&o.direction, "direction", "", "only inbound or outbound clusters")
		f.StringVar(&o.subset, "subset", "", "only clusters of this subset")
		f.IntVar(&o.port, "port", 0, "only clusters of this port")
	case "listener":
		f.IntVar(&o.port, "port", 0, "only listeners on this port")
		f.StringVar(&o.address, "address", "", "only listeners on this address")
	case "route":
		f.StringVar(&o.name, "name", "", "only the route configuration of this name")
	case "endpoint":
		f.StringVar(&o.cluster, "cluster", "", "only endpoints of this cluster")
	case "log":
		f.StringVar(&o.level, "level", "", "set the level: debug, info, warn or error")
	}
	return cmd
}

func runProxyConfig(cmd *cobra.Command, s streams, o *proxyConfigOptions, kind string, args []string) error {
	switch o.output {
	case "", "short", "json", "yaml":
	default:
		return &exitError{code: 2, err: fmt.Errorf("output format %q not supported: use json, yaml or short", o.output)}
	}
	if kind == "bootstrap" && o.output == "short" {
		o.output = "json"
	}
	admin := o.admin
	switch {
	case admin != "" && len(args) == 1:
		return &exitError{code: 2, err: errors.New("name a proxy or pass --admin, not both")}
	case admin == "" && len(args) == 0:
		return &exitError{code: 2, err: errors.New("name a proxy (POD-OR-WORKLOAD, e.g. productpage-v1) or pass --admin HOST:PORT")}
	case admin == "":
		st, err := o.loc.find()
		if o.kube.explicit() || (errors.Is(err, errNoUp) && o.kube.available()) {
			fw, err := o.kube.forwardProxy(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			defer fw.Close()
			admin = fw.Addr
			break
		}
		if err != nil {
			return err
		}
		p, err := resolveProxy(st, args[0])
		if err != nil {
			return err
		}
		admin = p.admin
	}
	ctx := cmd.Context()
	if kind == "log" {
		return proxyLog(cmd, s.out, admin, o.level)
	}
	if kind == "all" && o.output != "short" {
		body, err := adminGet(ctx, admin, "/config_dump?include_eds")
		if err != nil {
			return err
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			return fmt.Errorf("config dump: %w", err)
		}
		return writeJSON(s.out, v, o.output)
	}
	dump, err := fetchConfigDump(ctx, admin, kind == "endpoint" || kind == "all")
	if err != nil {
		return err
	}
	sortClusters(dump.clusters)
	sortListeners(dump.listeners)
	slices.SortStableFunc(dump.routes, func(a, b *routev3.RouteConfiguration) int { return strings.Compare(a.GetName(), b.GetName()) })
	cf := clusterFilter{fqdn: o.fqdn, direction: o.direction, subset: o.subset, port: o.port}
	lf := listenerFilter{port: o.port, address: o.address}
	short := o.output == "short"
	switch kind {
	case "bootstrap":
		if dump.bootstrap == nil {
			return &exitError{code: 1, err: errors.New("the proxy's config dump has no bootstrap")}
		}
		mo := protojson.MarshalOptions{UseProtoNames: true}
		b, err := mo.Marshal(dump.bootstrap)
		if err != nil {
			return err
		}
		return writeJSON(s.out, json.RawMessage(b), o.output)
	case "cluster":
		if short {
			return writeClusterSummary(s.out, dump.clusters, cf)
		}
		return writeProtos(s.out, slices.DeleteFunc(dump.clusters, func(c *clusterv3.Cluster) bool { return !cf.keep(c) }), o.output)
	case "listener":
		if short {
			return writeListenerSummary(s.out, dump.listeners, lf)
		}
		return writeProtos(s.out, slices.DeleteFunc(dump.listeners, func(l *listenerv3.Listener) bool { return !lf.keep(l) }), o.output)
	case "route":
		if short {
			return writeRouteSummary(s.out, dump.routes, o.name)
		}
		return writeProtos(s.out, slices.DeleteFunc(dump.routes, func(r *routev3.RouteConfiguration) bool { return o.name != "" && r.GetName() != o.name }), o.output)
	case "endpoint":
		if !short {
			return writeProtos(s.out, slices.DeleteFunc(dump.endpoints, func(e *endpointv3.ClusterLoadAssignment) bool {
				return o.cluster != "" && e.GetClusterName() != o.cluster
			}), o.output)
		}
		text, err := adminGet(ctx, admin, "/clusters")
		if err != nil {
			return err
		}
		return writeEndpointSummary(s.out, endpointRows(dump.endpoints, outlierFailed(text), o.cluster))
	}
	// all, short: each table after the other, as istioctl proxy-config all.
	text, err := adminGet(ctx, admin, "/clusters")
	if err != nil {
		return err
	}
	for i, write := range []func() error{
		func() error { return writeClusterSummary(s.out, dump.clusters, cf) },
		func() error { return writeListenerSummary(s.out, dump.listeners, lf) },
		func() error { return writeRouteSummary(s.out, dump.routes, "") },
		func() error {
			return writeEndpointSummary(s.out, endpointRows(dump.endpoints, outlierFailed(text), ""))
		},
	} {
		if i > 0 {
			fmt.Fprintln(s.out)
		}
		if err := write(); err != nil {
			return err
		}
	}
	return nil
}

// proxyLog prints the proxy's log level, setting it first when level is given.
func proxyLog(cmd *cobra.Command, w io.Writer, admin, level string) error {
	method, path := http.MethodGet, "/logging"
	if level != "" {
		switch level {
		case "debug", "info", "warn", "warning", "error":
		default:
			return &exitError{code: 2, err: fmt.Errorf("--level %q: use debug, info, warn or error", level)}
		}
		if level == "warning" {
			level = "warn"
		}
		method, path = http.MethodPost, "/logging?level="+level
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+admin+path, nil)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("admin address %q: %w", admin, err)}
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return fmt.Errorf("proxy admin %s: %w", admin, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("proxy admin %s%s: status %d: %s", admin, path, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	_, err = w.Write(body)
	return err
}

func newProxyConfigSecretCommand(s streams) *cobra.Command {
	var admin, at string
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Show the certificates a proxy serves now: SPIFFE ID, serial, validity and time remaining",
		Long: `secret reads a proxy's admin /certs endpoint and lists the SDS secrets in use:
"default" is the workload certificate (its SPIFFE ID, serial number, validity and the
time left before it expires; the proxy rotates it at about half its lifetime) and
"ROOTCA" the roots of the trust bundle. The serial changes at every rotation.`,
		Example: `  # The sidecar of a replica started by bowline up (admin addresses are in .bowline/up.json)
  bowline proxy-config secret --admin 127.0.0.1:15000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return &exitError{code: 2, err: fmt.Errorf("--at: %w", err)}
				}
				now = t
			}
			certs, err := fetchCerts(cmd.Context(), admin)
			if err != nil {
				return err
			}
			return writeSecrets(s.out, certs, now)
		},
	}
	cmd.Flags().StringVar(&admin, "admin", "127.0.0.1:15000", "the proxy's admin address HOST:PORT")
	cmd.Flags().StringVar(&at, "at", "", "compute the remaining time at this RFC 3339 time instead of now")
	_ = cmd.Flags().MarkHidden("at")
	return cmd
}

func fetchCerts(ctx context.Context, admin string) (*proxy.Certs, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/certs", nil)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("--admin %q: %w", admin, err)}
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("proxy admin %s: %w", admin, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("proxy admin %s/certs: status %d", admin, resp.StatusCode)
	}
	var out proxy.Certs
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("proxy admin %s/certs: %w", admin, err)
	}
	return &out, nil
}

func writeSecrets(w io.Writer, c *proxy.Certs, now time.Time) error {
	if len(c.Certificates) == 0 {
		return &exitError{code: 1, err: errors.New("the proxy has no workload certificate (started without --ca-address, or the first one has not arrived)")}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "RESOURCE NAME\tIDENTITY\tSERIAL NUMBER\tNOT BEFORE\tNOT AFTER\tREMAINING\tSTATUS")
	for _, ci := range c.Certificates {
		remaining := ci.NotAfter.Sub(now)
		status := "VALID"
		switch {
		case now.Before(ci.NotBefore):
			status = "NOT YET VALID"
		case remaining <= 0:
			status, remaining = "EXPIRED", 0
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ci.Name, ci.Identity, ci.Serial,
			ci.NotBefore.UTC().Format(time.RFC3339), ci.NotAfter.UTC().Format(time.RFC3339), roundRemaining(remaining), status)
	}
	return tw.Flush()
}

// roundRemaining shows whole seconds, or whole minutes above an hour.
func roundRemaining(d time.Duration) string {
	if d >= time.Hour {
		return d.Truncate(time.Minute).String()
	}
	return d.Truncate(time.Second).String()
}

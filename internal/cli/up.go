package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/bowline-mesh/bowline/internal/config/validation"
	"github.com/bowline-mesh/bowline/internal/dashboard"
	"github.com/bowline-mesh/bowline/internal/local"
	"github.com/bowline-mesh/bowline/internal/xds/server"
)

type upOptions struct {
	stateDir      string
	ingressPort   uint32
	ingressAddr   string
	accessLog     string
	netns         bool
	xdsAddress    string
	debugAddress  string
	domain        string
	rootNamespace string
	drain         time.Duration
	proxyBinary   string
	insecure      bool
	certTTL       time.Duration
	trustDomain   string
	meshConfig    string
	scrape        time.Duration
}

func newUpCommand(s streams) *cobra.Command {
	o := &upOptions{}
	cmd := &cobra.Command{
		Use:   "up DIR",
		Short: "Run the whole mesh on this machine: control plane, workloads, sidecars and ingress gateway",
		Long: `Up runs a mesh on one machine with no Kubernetes. DIR holds Istio YAML
(VirtualService, DestinationRule, Gateway, ServiceEntry, policies, ...) and Bowline
Workload definitions (bowline.dev/v1alpha1 Workload: a command, labels, ports,
replicas). Up starts the control plane in-process, then for every replica a sidecar
and the app; apps call services by name (http://reviews:9080) through their sidecar
(HTTP_PROXY). Services are ServiceEntries selecting workloads by labels.

With --netns (Linux, root) every replica runs in its own network namespace
(bowline-<replica>.<namespace>, an address in 10.250.0.0/16 on the bridge bowline0)
and iptables captures its traffic exactly as in a Kubernetes pod (Istio's ISTIO_*
chains, sidecar as uid 1337): apps need no HTTP_PROXY, listen on their
containerPort and call services by name through /etc/hosts entries for each
service's VIP. Everything is removed on exit, or by the next run after a crash.

Mesh-wide settings (Istio's MeshConfig: tracing providers, access logs, outbound
policy) come from a ConfigMap istio in the root namespace in DIR (data.mesh) or from
--mesh-config FILE.

Edits to files in DIR take effect live, as 'kubectl apply' would apply them: a file
that defines an object (kind, namespace, name) already defined in another file
replaces that definition (the file changed last wins, with a warning naming both);
deleting it brings the earlier definition back. Adding or removing a Gateway
changes the ingress gateway's listeners over xDS; it is never restarted.

The ingress gateway listens on 127.0.0.1 unless --ingress-address says otherwise,
and up prints the address it serves once everything is ready. A port up needs that
is taken ends it with an error naming the flag that chooses another; a second up
on a directory that is running is refused ("already running (pid N)").

State (ports, addresses, the ingress URL) is written to DIR/.bowline/up.json and
logs to DIR/.bowline/logs/; 'bowline proxy-status' and 'bowline proxy-config' find
a running up from anywhere on the machine. Ctrl-C stops everything; sidecars
drain first.`,
		Example: `  # Build Bookinfo and run it
  make -C samples/bookinfo build
  bowline up samples/bookinfo/platform/local

  # Serve the ingress gateway on port 18080 instead of the Gateway's port
  bowline up samples/bookinfo/platform/local --ingress-port 18080

  # Reach the ingress from other machines too (every interface)
  bowline up samples/bookinfo/platform/local --ingress-address 0.0.0.0

  # Each replica in its own network namespace with iptables capture (as root)
  sudo bowline up samples/bookinfo/platform/local --ingress-port 18080 --netns`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUp(cmd.Context(), s, o, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.stateDir, "state-dir", "", "where up.json and logs/ go (default DIR/.bowline)")
	f.Uint32Var(&o.ingressPort, "ingress-port", 0, "serve the ingress Gateway's first HTTP port on this port instead")
	f.StringVar(&o.ingressAddr, "ingress-address", "127.0.0.1", "IP address the ingress gateway listens on (0.0.0.0: every interface)")
	f.StringVar(&o.accessLog, "access-log", "json", "proxy access logs: off, json or text")
	f.BoolVar(&o.netns, "netns", false, "run each replica in its own network namespace with iptables capture (Linux, root)")
	f.StringVar(&o.xdsAddress, "xds-address", "127.0.0.1:0", "where the control plane serves xDS (port 0 picks a free one)")
	f.StringVar(&o.debugAddress, "debug-address", "127.0.0.1:0", "where the control plane serves /debug, /metrics and registration")
	f.StringVar(&o.domain, "domain", "cluster.local", "cluster domain")
	f.StringVar(&o.rootNamespace, "root-namespace", "istio-system", "mesh config root namespace")
	f.StringVar(&o.meshConfig, "mesh-config", "", "MeshConfig YAML file, watched; replaces the ConfigMap istio of DIR")
	f.DurationVar(&o.drain, "drain-duration", 5*time.Second, "how long sidecars finish in-flight requests on shutdown")
	f.StringVar(&o.proxyBinary, "proxy-binary", "", "bowline binary to run as sidecars (default: this binary)")
	_ = f.MarkHidden("proxy-binary")
	f.BoolVar(&o.insecure, "insecure", false, "run without the CA: plaintext xDS, no workload certificates, plaintext between sidecars")
	f.StringVar(&o.trustDomain, "trust-domain", "cluster.local", "SPIFFE trust domain of workload identities")
	f.DurationVar(&o.scrape, "scrape-interval", dashboard.DefaultInterval, "how often the dashboard scrapes the proxies' metrics")
	f.DurationVar(&o.certTTL, "workload-cert-ttl", 24*time.Hour, "lifetime of workload certificates (rotated at half)")
	_ = f.MarkHidden("workload-cert-ttl")
	return cmd
}

func runUp(ctx context.Context, s streams, o *upOptions, dir string) error {
	switch o.accessLog {
	case "off", "json", "text":
	default:
		return &exitError{code: 2, err: fmt.Errorf("--access-log %q: use off, json or text", o.accessLog)}
	}
	if info, err := os.Stat(dir); err != nil || !info.IsDir() {
		return &exitError{code: 2, err: fmt.Errorf("%s is not a directory", dir)}
	}
	if net.ParseIP(o.ingressAddr) == nil {
		return &exitError{code: 2, err: fmt.Errorf("--ingress-address %q: want an IP address such as 127.0.0.1 or 0.0.0.0", o.ingressAddr)}
	}
	// Refuse early, before the CA or any port is touched.
	if release, err := local.Lock(stateDirOf(dir, o.stateDir)); err != nil {
		return err
	} else {
		release() // Up.Run takes it again for the whole run
	}
	for _, p := range []struct{ what, addr, flag string }{{"xds", o.xdsAddress, "--xds-address"}, {"debug", o.debugAddress, "--debug-address"}} {
		if err := local.CheckPort(p.what, p.addr, "choose another with "+p.flag); err != nil {
			return err
		}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	logger := slog.New(slog.NewTextHandler(s.err, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var network *local.Network
	if o.netns {
		var err error
		if network, err = local.NewNetwork(logger); err != nil {
			return &exitError{code: 2, err: err}
		}
		// Teardown also runs after a failed Setup: it removes whatever exists.
		defer network.Teardown(context.WithoutCancel(ctx))
		if err := network.Setup(ctx); err != nil {
			return err
		}
		// Sidecars in namespaces reach the control plane through the bridge.
		if host, port, err := net.SplitHostPort(o.xdsAddress); err == nil && (host == "127.0.0.1" || host == "localhost") {
			o.xdsAddress = net.JoinHostPort(local.BridgeAddr.String(), port)
		}
	}
	scfg := server.Config{Insecure: true}
	var sec *local.Security
	var mca *meshCA
	if !o.insecure {
		// The CA (state dir/ca, kept across runs) serves on the xDS port; every
		// proxy gets a token file and talks xDS over mTLS.
		caDir := filepath.Join(stateDirOf(dir, o.stateDir), "ca")
		if err := os.MkdirAll(caDir, 0o755); err != nil {
			return fmt.Errorf("ca dir: %w", err)
		}
		m, err := newMeshCA(caDir, o.trustDomain, o.certTTL, logger)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		mca = m
		scfg.Insecure, scfg.TLS, scfg.Register = false, m.xdsTLS(o.xdsAddress), m.register
		sec = &local.Security{RootCert: m.rootFile, WriteToken: m.writeToken}
	}
	gen := server.NewMeshGenerator(o.domain, o.rootNamespace, logger)
	if o.insecure {
		gen.WithoutCA()
	}
	cpCfg := server.Config{
		XDSAddress: o.xdsAddress, DebugAddress: o.debugAddress, Insecure: scfg.Insecure, TLS: scfg.TLS, Register: scfg.Register,
		ConfigDir: dir, MeshConfigFile: o.meshConfig, Validate: validation.Objects,
		Generator: gen,
		Domain:    o.domain, RootNamespace: o.rootNamespace, Version: version, Logger: logger,
	}
	dash, bindDash, err := meshDashboard(&cpCfg, o.scrape, o.insecure)
	if err != nil {
		return err
	}
	cp, err := server.New(cpCfg)
	if err != nil {
		return err
	}
	bindDash(cp)
	if o.insecure {
		logger.Info(noCANotice)
	}
	start := time.Now()
	up, err := local.NewUp(local.Config{
		Dir: dir, StateDir: stateDirOf(dir, o.stateDir), ProxyBinary: o.proxyBinary, IngressPort: o.ingressPort, IngressAddress: o.ingressAddr,
		AccessLog: o.accessLog, Domain: o.domain, DrainDuration: o.drain, Logger: logger, Network: network, Security: sec,
		Ready: func(st *local.State) {
			fmt.Fprintf(s.out, "bowline up: %d replicas serving after %s\n", len(st.Workloads), time.Since(start).Round(time.Millisecond))
			switch {
			case st.IngressBound != "":
				fmt.Fprintf(s.out, "ingress: %s (listening on %s, every interface)\n", st.Ingress, st.IngressBound)
			case st.Ingress != "":
				fmt.Fprintf(s.out, "ingress: %s\n", st.Ingress)
			}
			fmt.Fprintf(s.out, "dashboard: http://%s/\n", st.ControlPlane.Debug)
			fmt.Fprintf(s.out, "state: %s\n", filepath.Join(stateDirOf(dir, o.stateDir), local.StateFile))
		},
	}, cp, cp.Registry())
	if err != nil {
		return err
	}
	run := func(ctx context.Context) error { return runBeside(ctx, up.Run, dash.Run) }
	if mca != nil {
		// Edits of <state-dir>/ca (root rotation) and SIGHUP reload the CA.
		return mca.runBeside(ctx, run)
	}
	return run(ctx)
}

// stateDirOf returns the state directory as an absolute path: proxies run
// from another working directory and are handed paths inside it.
func stateDirOf(dir, stateDir string) string {
	if stateDir == "" {
		stateDir = filepath.Join(dir, ".bowline")
	}
	if abs, err := filepath.Abs(stateDir); err == nil {
		return abs
	}
	return stateDir
}

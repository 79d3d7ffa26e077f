package cli

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/bowline-mesh/bowline/internal/proxy"
	"github.com/bowline-mesh/bowline/internal/proxy/xdsclient"
)

func newProxyCommand(s streams) *cobra.Command {
	var (
		cfg            proxy.Config
		nodeID         string
		labels         string
		ip             string
		typ            string
		outbound       string
		inbound        []string
		gatewayPorts   []string
		gatewayAddress string
		interception   string
		memLimit       string
		releasePages   bool
		labelsFile     string
		logLevel       string
		statusPort     int
		healthPort     int
		statsPort      int
	)
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run the Bowline proxy (sidecar or gateway) fed by the control plane over xDS",
		Example: `  # A sidecar for reviews-v1 that receives mesh traffic on 10.0.0.5:9080 for the app on 127.0.0.1:9081
  # and gives the app an explicit HTTP proxy on 127.0.0.1:15080
  bowline proxy --discovery 127.0.0.1:15010 --insecure-xds --namespace default --workload reviews-v1 \
    --service-account bookinfo-reviews --labels app=reviews,version=v1 --ip 10.0.0.5 \
    --inbound 9080=9081 --outbound-http-address 127.0.0.1:15080

  # The same sidecar with a workload certificate from the CA (xDS over mTLS)
  bowline proxy --discovery 127.0.0.1:15010 --ca-address 127.0.0.1:15010 --ca-root-cert ./cacerts/root-cert.pem \
    --ca-token-file ./reviews.token --namespace default --workload reviews-v1 --service-account bookinfo-reviews \
    --inbound 9080=9081

  # The sidecar in a Kubernetes pod, as the injector writes it (node metadata from the
  # downward API, the projected ServiceAccount token as the CA credential, Istio's ports)
  bowline proxy --discovery istiod.istio-system.svc:15012 --ca-address istiod.istio-system.svc:15012 \
    --ca-root-cert /var/run/secrets/istio/root-cert.pem --ca-token-file /var/run/secrets/tokens/istio-token \
    --namespace "$POD_NAMESPACE" --workload reviews-v1 --service-account "$SERVICE_ACCOUNT" --ip "$INSTANCE_IP" \
    --labels-file /etc/istio/pod/labels --interception-mode REDIRECT --inbound 9080=9080 \
    --status-port 15020 --health-port 15021 --stats-port 15090

  # An ingress gateway serving Gateway port 80 on 8080
  bowline proxy --discovery 127.0.0.1:15010 --insecure-xds --type router --namespace istio-system \
    --workload ingressgateway --gateway-port 80=8080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if typ != "sidecar" && typ != "router" {
				return fmt.Errorf("--type: want sidecar or router, got %q", typ)
			}
			switch cfg.AccessLog {
			case "off", "json", "text":
			default:
				return fmt.Errorf("--access-log: want off, json or text, got %q", cfg.AccessLog)
			}
			if ip != "" {
				if net.ParseIP(ip) == nil {
					return fmt.Errorf("--ip: %q is not an IP address", ip)
				}
			}
			lbls := map[string]string{}
			if labelsFile != "" {
				b, err := os.ReadFile(labelsFile)
				if err != nil {
					return fmt.Errorf("--labels-file: %w", err)
				}
				if lbls, err = parseDownwardLabels(string(b)); err != nil {
					return fmt.Errorf("--labels-file %s: %w", labelsFile, err)
				}
			}
			flagLabels, err := parseLabels(labels)
			if err != nil {
				return fmt.Errorf("--labels: %w", err)
			}
			maps.Copy(lbls, flagLabels)
			slogLevel, err := envoyLogLevel(logLevel)
			if err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			for _, pf := range []struct {
				name string
				port int
				dst  *string
			}{{"--status-port", statusPort, &cfg.StatusAddress}, {"--health-port", healthPort, &cfg.HealthAddress}, {"--stats-port", statsPort, &cfg.StatsAddress}} {
				if pf.port < 0 || pf.port > 65535 {
					return fmt.Errorf("%s: %d is not a port (0 disables)", pf.name, pf.port)
				}
				if pf.port != 0 {
					*pf.dst = ":" + strconv.Itoa(pf.port)
				}
			}
			// The injector passes the apps' probes and scrape settings in
			// Istio's environment variables.
			if cfg.AppProbes, err = proxy.ParseAppProbes(os.Getenv("ISTIO_KUBE_APP_PROBERS")); err != nil {
				return fmt.Errorf("ISTIO_KUBE_APP_PROBERS: %w", err)
			}
			if len(cfg.AppProbes) > 0 && cfg.StatusAddress == "" {
				return fmt.Errorf("ISTIO_KUBE_APP_PROBERS is set but --status-port is 0: the kubelet's probes would have nowhere to go")
			}
			if cfg.AppMetrics, err = proxy.ParseAppScrape(os.Getenv("ISTIO_PROMETHEUS_ANNOTATIONS")); err != nil {
				return fmt.Errorf("ISTIO_PROMETHEUS_ANNOTATIONS: %w", err)
			}
			in, err := parsePortMaps(inbound)
			if err != nil {
				return fmt.Errorf("--inbound: %w", err)
			}
			gw, err := parsePortMaps(gatewayPorts)
			if err != nil {
				return fmt.Errorf("--gateway-port: %w", err)
			}
			if gatewayAddress != "" && net.ParseIP(gatewayAddress) == nil {
				return fmt.Errorf("--gateway-address: %q is not an IP address", gatewayAddress)
			}
			if outbound != "" {
				if _, _, err := net.SplitHostPort(outbound); err != nil {
					return fmt.Errorf("--outbound-http-address: %w", err)
				}
			}
			if !cfg.InsecureXDS && cfg.CAAddress == "" {
				return fmt.Errorf("xDS over mTLS needs a workload certificate: pass --ca-address, --ca-root-cert and --ca-token-file, or --insecure-xds")
			}
			if interception != "REDIRECT" && interception != "NONE" {
				return fmt.Errorf("--interception-mode: want REDIRECT or NONE, got %q", interception)
			}
			cfg.Node = xdsclient.NodeInfo{InterceptionMode: interception, ID: nodeID, Type: typ, Namespace: cfg.Node.Namespace,
				Workload: cfg.Node.Workload, ServiceAccount: cfg.Node.ServiceAccount, Labels: lbls,
				Inbound: in, OutboundHTTP: outbound, GatewayPorts: gw, GatewayAddress: gatewayAddress}
			if ip != "" {
				cfg.Node.IPs = []string{ip}
			}
			level := new(slog.LevelVar)
			level.Set(slogLevel)
			cfg.LogLevel = level
			cfg.Logger = slog.New(slog.NewJSONHandler(s.err, &slog.HandlerOptions{Level: level}))
			cfg.AccessLogWriter = s.out
			// GOGC 50 for the sidecar unless the environment says otherwise:
			// at 1000 req/s it keeps ~2.5 MiB less anonymous memory than
			// Go's default 100 for no measurable CPU (bench/dataplane/RESULTS.md).
			if os.Getenv("GOGC") == "" {
				debug.SetGCPercent(50)
			}
			if memLimit != "" {
				n, err := parseBytes(memLimit)
				if err != nil {
					return fmt.Errorf("--memory-limit: %w", err)
				}
				// A soft limit: the GC works harder as the heap nears it
				// (GOMEMLIMIT), and GOGC stays as it is below it.
				debug.SetMemoryLimit(n)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			p := proxy.New(cfg)
			if releasePages {
				go releaseWhenReady(ctx, p, cfg.Logger)
			}
			return p.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Discovery, "discovery", "127.0.0.1:15010", "control plane xDS address HOST:PORT")
	f.BoolVar(&cfg.InsecureXDS, "insecure-xds", false, "talk to the control plane in plaintext (otherwise mTLS with the workload certificate)")
	f.StringVar(&cfg.CAAddress, "ca-address", "", "CA HOST:PORT to get and rotate the workload certificate from (usually the discovery address)")
	f.StringVar(&cfg.CARootCert, "ca-root-cert", "", "PEM file with the root(s) that verify the CA (its root-cert.pem)")
	f.StringVar(&cfg.CATokenFile, "ca-token-file", "", "file holding the bootstrap token for the CA (never pass tokens on the command line)")
	f.StringVar(&cfg.TrustDomain, "trust-domain", "", "required trust domain of the issued identity (default: whatever the CA issues)")
	f.StringVar(&nodeID, "node-id", "", "xDS node id (default: Istio's form from --type, --ip, --workload, --namespace)")
	f.StringVar(&cfg.Node.Namespace, "namespace", "default", "workload namespace")
	f.StringVar(&cfg.Node.Workload, "workload", "", "workload name")
	f.StringVar(&cfg.Node.ServiceAccount, "service-account", "default", "workload service account")
	f.StringVar(&labels, "labels", "", "workload labels k=v,k=v")
	f.StringVar(&ip, "ip", "127.0.0.1", "workload instance IP")
	f.StringVar(&typ, "type", "sidecar", "proxy type: sidecar or router")
	f.StringVar(&cfg.AdminAddress, "admin-address", "127.0.0.1:15000", "admin endpoint HOST:PORT")
	f.StringVar(&outbound, "outbound-http-address", "", "explicit outbound HTTP proxy HOST:PORT for the app's HTTP_PROXY")
	f.StringArrayVar(&inbound, "inbound", nil, "mesh port to application port PORT=APP_PORT (repeatable)")
	f.StringArrayVar(&gatewayPorts, "gateway-port", nil, "gateway server port to listen port PORT=LISTEN_PORT (repeatable)")
	f.StringVar(&gatewayAddress, "gateway-address", "", "IP address a router binds its Gateway listeners to (default: every address, as Istio's gateways)")
	f.StringVar(&interception, "interception-mode", "NONE", "REDIRECT when iptables sends the workload's traffic to 15001/15006 (a pod, bowline up --netns), NONE for explicit mode")
	f.StringVar(&cfg.AccessLog, "access-log", "json", "access log format: off, json or text")
	f.DurationVar(&cfg.DrainDuration, "drain-duration", 5*time.Second, "how long in-flight requests may finish on shutdown")
	f.BoolVar(&cfg.TerminationDrain, "termination-drain", false, "on SIGTERM, drain gracefully and keep every listener serving for --drain-duration before stopping, as Istio's sidecar does (the injector sets it); skipped after POST /drain on the status port")
	f.DurationVar(&cfg.AccessLogFlushInterval, "access-log-flush-interval", time.Second, "how long access log lines may wait in memory before they are written, in one write (Envoy's file_flush_interval_msec); 0 writes each line as it is logged")
	f.StringVar(&memLimit, "memory-limit", "", "soft memory limit of the Go runtime (like GOMEMLIMIT), e.g. 64MiB; the GC runs more often near it")
	f.StringVar(&labelsFile, "labels-file", "", "Kubernetes downward-API file of the pod's labels (key=\"value\" lines); --labels add to and override it")
	f.StringVar(&logLevel, "log-level", "info", "log level: trace, debug, info, warning, error, critical or off (Envoy's names, as sidecar.istio.io/logLevel)")
	f.IntVar(&statusPort, "status-port", 0, "in a pod: serve /healthz/ready, the kubelet's /app-health/... probes, merged /stats/prometheus and /quitquitquit on this port (Istio's 15020; 0 disables)")
	f.IntVar(&healthPort, "health-port", 0, "in a pod: serve /healthz/ready on this port (Istio's 15021; 0 disables)")
	f.IntVar(&statsPort, "stats-port", 0, "in a pod: serve the proxy's /stats/prometheus on this port (Istio's 15090; 0 disables)")
	f.BoolVar(&releasePages, "release-binary-pages", true, "once ready, unmap the pages of the bowline binary that initialisation touched (they stay in the shared page cache); RSS then shows the proxy's working set")
	return cmd
}

// parseDownwardLabels reads the Kubernetes downward-API labels file: one
// key="value" line per label, the value quoted as Go quotes strings.
func parseDownwardLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for i, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if line == "" {
			continue
		}
		k, q, ok := strings.Cut(line, "=")
		v, err := strconv.Unquote(q)
		if !ok || k == "" || err != nil {
			return nil, fmt.Errorf("line %d: %q is not key=\"value\"", i+1, line)
		}
		out[k] = v
	}
	return out, nil
}

// envoyLogLevel maps Envoy's log level names onto slog's.
func envoyLogLevel(s string) (slog.Level, error) {
	switch s {
	case "trace", "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warning", "warn":
		return slog.LevelWarn, nil
	case "error", "critical":
		return slog.LevelError, nil
	case "off":
		return slog.LevelError + 100, nil
	}
	return 0, fmt.Errorf("%q: want trace, debug, info, warning, error, critical or off", s)
}

func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if s == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not k=v", kv)
		}
		out[k] = v
	}
	return out, nil
}

func parsePortMaps(in []string) (map[uint32]uint32, error) {
	out := map[uint32]uint32{}
	for _, s := range in {
		for _, e := range strings.Split(s, ",") {
			a, b, ok := strings.Cut(e, "=")
			pa, err1 := strconv.ParseUint(a, 10, 16)
			pb, err2 := strconv.ParseUint(b, 10, 16)
			if !ok || err1 != nil || err2 != nil || pa == 0 || pb == 0 {
				return nil, fmt.Errorf("%q is not PORT=PORT", e)
			}
			out[uint32(pa)] = uint32(pb)
		}
	}
	return out, nil
}

// releaseWhenReady drops the binary pages package initialisation and startup
// touched, once the proxy has its first configuration.
func releaseWhenReady(ctx context.Context, p *proxy.Proxy, log *slog.Logger) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for !p.Ready() {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	n, err := proxy.ReleaseBinaryPages()
	if err != nil {
		log.Info("binary pages not released", slog.String("error", err.Error()))
		return
	}
	log.Debug("binary pages released", slog.Int64("bytes", n))
}

// parseBytes reads a size: a number of bytes with an optional KiB, MiB or
// GiB suffix (Ki, Mi, Gi and K, M, G also work, all binary).
func parseBytes(s string) (int64, error) {
	num := strings.TrimRight(s, "KMGiBkmgb")
	mult := int64(1)
	switch strings.ToUpper(strings.TrimSuffix(strings.TrimSuffix(s[len(num):], "B"), "i")) {
	case "":
	case "K":
		mult = 1 << 10
	case "M":
		mult = 1 << 20
	case "G":
		mult = 1 << 30
	default:
		return 0, fmt.Errorf("%q: want a size such as 64MiB", s)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q: want a size such as 64MiB", s)
	}
	return n * mult, nil
}

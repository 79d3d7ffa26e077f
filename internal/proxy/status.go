package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The sidecar's ports in a pod, as Istio's: the status port (pilot-agent's
// 15020: readiness, the kubelet's rewritten app probes, merged metrics,
// /quitquitquit), the health port (15021: /healthz/ready) and the stats port
// (15090: the proxy's own /stats/prometheus). Each is off when its address
// is empty.

// probeSource is the address app probes come from, which the pod's iptables
// never capture (Istio's 127.0.0.6); Linux only, where all of 127/8 is on lo.
var probeSource = func() *net.TCPAddr {
	if runtime.GOOS != "linux" {
		return nil
	}
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 6)}
}()

// maxProbeBody bounds the app's probe answer copied back to the kubelet.
const maxProbeBody = 10 << 10

// statusServer is one of the sidecar's HTTP ports.
type statusServer struct {
	addr string
	h    http.Handler
}

func (p *Proxy) statusServers() []statusServer {
	var out []statusServer
	if p.cfg.StatusAddress != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz/ready", p.healthzReady)
		mux.HandleFunc("/stats/prometheus", p.mergedStats)
		mux.HandleFunc("/debug/failures", p.serveFailures)
		mux.HandleFunc("/app-health/", p.appHealth)
		// POST /drain starts the graceful drain (drain.go), as pilot-agent's
		// /drain that Istio's native sidecar preStop hook calls.
		mux.Handle("/drain", localOnly(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				http.Error(w, "use POST", http.StatusMethodNotAllowed)
				return
			}
			p.Drain()
			_, _ = io.WriteString(w, "OK\n")
		})))
		mux.Handle("/quitquitquit", localOnly(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				http.Error(w, "use POST", http.StatusMethodNotAllowed)
				return
			}
			p.Quit()
			_, _ = io.WriteString(w, "OK\n")
		})))
		out = append(out, statusServer{p.cfg.StatusAddress, mux})
	}
	if p.cfg.HealthAddress != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz/ready", p.healthzReady)
		out = append(out, statusServer{p.cfg.HealthAddress, mux})
	}
	if p.cfg.StatsAddress != "" {
		mux := http.NewServeMux()
		mux.Handle("/stats/prometheus", promhttp.HandlerFor(p.metrics.reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/debug/failures", p.serveFailures)
		out = append(out, statusServer{p.cfg.StatsAddress, mux})
	}
	return out
}

// serveHTTP serves h on ln until ctx ends.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// healthzReady is the sidecar's readiness: config applied, certificate held,
// not shutting down.
func (p *Proxy) healthzReady(w http.ResponseWriter, _ *http.Request) {
	switch {
	case p.stopping.Load(), p.gracefulDrain.Load():
		http.Error(w, "draining", http.StatusServiceUnavailable)
	case !p.Ready():
		http.Error(w, "not ready: waiting for configuration and workload certificate", http.StatusServiceUnavailable)
	default:
		w.WriteHeader(http.StatusOK)
	}
}

// statsAddress is where a scraper reaches the proxy's Istio metrics, sent to
// the control plane as BOWLINE_STATS_ADDRESS: the status port (merged
// metrics, Istio's 15020), else the stats port (15090), else the admin
// address; a listener on every address is named by the workload's IP. It is
// "" when none has a fixed port.
func statsAddress(cfg Config) string {
	for _, a := range []string{cfg.StatusAddress, cfg.StatsAddress, cfg.AdminAddress} {
		host, port, err := net.SplitHostPort(a)
		if err != nil || port == "0" || port == "" {
			continue
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1"
			if len(cfg.Node.IPs) > 0 && cfg.Node.IPs[0] != "" {
				host = cfg.Node.IPs[0]
			}
		}
		return net.JoinHostPort(host, port)
	}
	return ""
}

// appHost is where app probes and app metrics go: the pod's IP (the app may
// listen on it alone), else loopback.
func (p *Proxy) appHost() string {
	if len(p.cfg.Node.IPs) > 0 && p.cfg.Node.IPs[0] != "" {
		return p.cfg.Node.IPs[0]
	}
	return "127.0.0.1"
}

// appHealth runs the app probe registered for the path and answers with its
// outcome, as the kubelet would have seen it.
func (p *Proxy) appHealth(w http.ResponseWriter, r *http.Request) {
	pr, ok := p.cfg.AppProbes[r.URL.Path]
	if !ok {
		http.Error(w, "no app probe is configured for "+r.URL.Path, http.StatusBadRequest)
		return
	}
	dialer := &net.Dialer{Timeout: pr.Timeout, LocalAddr: probeSource}
	ctx, cancel := context.WithTimeout(r.Context(), pr.Timeout)
	defer cancel()
	host := p.appHost()
	switch {
	case pr.HTTPGet != nil:
		p.probeHTTP(ctx, w, r, dialer, host, pr.HTTPGet)
	case pr.TCPSocket != nil:
		c, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(int(pr.TCPSocket.Port))))
		if err != nil {
			http.Error(w, "tcp probe: "+err.Error(), http.StatusInternalServerError)
			return
		}
		_ = c.Close()
		w.WriteHeader(http.StatusOK)
	case pr.GRPC != nil:
		p.probeGRPC(ctx, w, dialer, host, pr.GRPC)
	}
}

func (p *Proxy) probeHTTP(ctx context.Context, w http.ResponseWriter, r *http.Request, d *net.Dialer, host string, h *HTTPGetProbe) {
	scheme := "http"
	if h.Scheme == "HTTPS" {
		scheme = "https"
	}
	target := scheme + "://" + net.JoinHostPort(host, strconv.Itoa(int(h.Port))) + h.Path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		http.Error(w, "http probe: "+err.Error(), http.StatusInternalServerError)
		return
	}
	for k, v := range r.Header { // the kubelet's headers (User-Agent: kube-probe/...)
		req.Header[k] = v
	}
	for k, v := range h.Headers {
		req.Header[k] = v
	}
	if h.Host != "" {
		req.Host = h.Host
	}
	// Like the kubelet: no keep-alive, no certificate check, redirects not
	// followed.
	tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // #nosec G402 -- the kubelet does not verify probe targets either
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		p.log.Debug("app probe failed", slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		http.Error(w, "http probe: "+err.Error(), http.StatusInternalServerError)
		return
	}
	defer resp.Body.Close()
	code := resp.StatusCode
	if code >= 300 && code < 400 {
		code = http.StatusOK // a redirect passes a kubelet probe
	}
	w.WriteHeader(code)
	_, _ = io.Copy(w, io.LimitReader(resp.Body, maxProbeBody))
}

func (p *Proxy) probeGRPC(ctx context.Context, w http.ResponseWriter, d *net.Dialer, host string, g *GRPCProbe) {
	conn, err := grpc.NewClient(net.JoinHostPort(host, strconv.Itoa(int(g.Port))),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }))
	if err != nil {
		http.Error(w, "grpc probe: "+err.Error(), http.StatusInternalServerError)
		return
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: g.Service})
	if err != nil {
		http.Error(w, "grpc probe: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		http.Error(w, "grpc probe: "+resp.GetStatus().String(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// mergedStats serves the proxy's metrics and, when the pod asked for it
// (AppMetrics), the app's own, in one Prometheus text exposition: Istio's
// metrics merging, so a pod annotated for scraping keeps its app metrics
// under STRICT mTLS. Names starting istio_ or envoy_ are the proxy's: the
// app's families of those names are dropped, so a series never mixes
// sources; an app that cannot be scraped leaves the proxy's alone.
func (p *Proxy) mergedStats(w http.ResponseWriter, r *http.Request) {
	fams, err := p.metrics.reg.Gather()
	if err != nil {
		http.Error(w, "gather metrics: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if a := p.cfg.AppMetrics; a != nil {
		app, err := p.scrapeApp(r.Context(), a)
		if err != nil {
			p.log.Debug("app metrics not merged", slog.String("error", err.Error()))
		}
		have := make(map[string]bool, len(fams))
		for _, f := range fams {
			have[f.GetName()] = true
		}
		for _, name := range slices.Sorted(maps.Keys(app)) {
			if !have[name] && !strings.HasPrefix(name, "istio_") && !strings.HasPrefix(name, "envoy_") {
				fams = append(fams, app[name])
			}
		}
	}
	format := expfmt.NewFormat(expfmt.TypeTextPlain)
	w.Header().Set("Content-Type", string(format))
	enc := expfmt.NewEncoder(w, format)
	for _, f := range fams {
		if err := enc.Encode(f); err != nil {
			return // the client went away
		}
	}
}

// scrapeApp fetches and parses the app's metrics.
func (p *Proxy) scrapeApp(ctx context.Context, a *AppScrape) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	url := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(int(a.Port))) + a.Path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: status %d", url, resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	return fams, nil
}

package proxy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/credentials"

	"github.com/bowline-mesh/bowline/internal/identity"
	"github.com/bowline-mesh/bowline/internal/proxy/extauthz"
	"github.com/bowline-mesh/bowline/internal/proxy/xdsclient"
	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// Config configures a proxy. The command fills it from flags.
type Config struct {
	// Discovery is the control plane's HOST:PORT.
	Discovery string
	// InsecureXDS uses plaintext gRPC to the control plane.
	InsecureXDS bool
	// Node describes the proxy to the control plane (id and metadata).
	Node xdsclient.NodeInfo
	// AdminAddress is where the admin endpoint listens ("" disables it).
	AdminAddress string
	// AccessLog is "off", "json" or "text".
	AccessLog string
	// AccessLogWriter receives access log lines (stdout in the command).
	AccessLogWriter io.Writer
	// AccessLogFlushInterval buffers access log lines and writes them at
	// this interval (or when 64 KiB wait), off the request path, as Envoy
	// flushes its access logs (file_flush_interval_msec, 1 s in the
	// command); 0 writes every line as it is logged.
	AccessLogFlushInterval time.Duration
	// DrainDuration bounds how long in-flight requests may finish on shutdown
	// and on listener removal.
	DrainDuration time.Duration
	// TerminationDrain makes the end of Run's context drain as Istio's
	// sidecar does on SIGTERM: the graceful drain (drain.go) for
	// DrainDuration with every listener still serving (the app, stopping
	// beside it, may still call out), then the shutdown. Skipped when Drain
	// already ran (the native sidecar's preStop hook; its SIGTERM comes once
	// the app has exited) and cut short by Quit (/quitquitquit).
	TerminationDrain bool
	// Logger receives the proxy's logs.
	Logger *slog.Logger
	// LogLevel, when set, is changed by the admin /logging endpoint.
	LogLevel *slog.LevelVar
	// ForceSotW makes the xDS client skip delta xDS.
	ForceSotW bool
	// XDSBackoffBase is the first xDS reconnect delay (default 500ms).
	XDSBackoffBase time.Duration
	// Identity serves the SDS secrets "default" (workload certificate) and
	// "ROOTCA" (trust bundle) of mTLS listeners and clusters (tls.go); nil
	// means the proxy has no identity and NACKs config that needs one.
	Identity CertSource
	// CAAddress, when set, makes the proxy run a workload identity agent
	// (internal/identity) against this CA (HOST:PORT): it fetches the first
	// certificate at start (readiness waits for it), rotates it, serves it as
	// Identity (unless Identity is set) and, without InsecureXDS, uses it for
	// xDS over mTLS.
	CAAddress string
	// CARootCert is the PEM file of the root(s) that verify the CA's serving
	// certificate. Required with CAAddress.
	CARootCert string
	// CATokenFile holds the bootstrap token sent to the CA.
	CATokenFile string
	// TrustDomain, when set, must be the trust domain of the issued identity.
	TrustDomain string
	// CertTTL is the certificate lifetime requested from the CA; 0 leaves it
	// to the CA (24h by default).
	CertTTL time.Duration
	// RequestHeadersTimeout bounds reading a downstream request's head
	// (Envoy's request_headers_timeout; it cuts off slowloris clients); 0
	// means 10s, the value of Envoy's edge best-practices guide.
	RequestHeadersTimeout time.Duration
	// IdleTimeout closes downstream HTTP connections with no request for
	// this long (Envoy's common_http_protocol_options.idle_timeout); 0 means
	// Envoy's default of 1h.
	IdleTimeout time.Duration

	// StatusAddress is the sidecar's status port in a pod (Istio's 15020):
	// /healthz/ready, the kubelet's rewritten /app-health/... probes, the
	// merged /stats/prometheus and /quitquitquit (loopback only). "" disables.
	StatusAddress string
	// HealthAddress serves /healthz/ready alone (Istio's 15021, the
	// sidecar's own readiness probe). "" disables.
	HealthAddress string
	// StatsAddress serves the proxy's /stats/prometheus (Istio's 15090).
	// "" disables.
	StatsAddress string
	// AppProbes are the apps' probes by /app-health/CONTAINER/KIND path
	// (ParseAppProbes); they are sent to the first of Node.IPs (loopback when
	// none) from 127.0.0.6.
	AppProbes map[string]AppProbe
	// AppMetrics, when set, is the app's metrics endpoint on loopback that
	// the status port's /stats/prometheus merges in (ParseAppScrape).
	AppMetrics *AppScrape
}

// Envoy's defaults for the downstream timeouts (see Config).
const (
	defaultRequestHeadersTimeout = 10 * time.Second
	defaultIdleTimeout           = time.Hour
	defaultStreamIdleTimeout     = 5 * time.Minute
)

func (c *Config) requestHeadersTimeout() time.Duration {
	if c.RequestHeadersTimeout > 0 {
		return c.RequestHeadersTimeout
	}
	return defaultRequestHeadersTimeout
}

func (c *Config) idleTimeout() time.Duration {
	if c.IdleTimeout > 0 {
		return c.IdleTimeout
	}
	return defaultIdleTimeout
}

// Proxy is one running data plane. Construct it with New; Run starts it.
type Proxy struct {
	cfg     Config
	log     *slog.Logger
	xds     *xdsclient.Client
	snap    atomic.Pointer[snapshot]
	version atomic.Int64
	ready   atomic.Bool
	metrics *metrics
	alog    *accessLogger
	// failures keeps the recent failed requests (/debug/failures).
	failures failureLog
	// logKick asks the access log flusher for an early flush.
	logKick chan struct{}
	// secMetrics counts RBAC decisions (filters_security.go).
	secMetrics *securityMetrics
	// agent is the workload identity agent (identity.go), nil without a CA;
	// initErr is a configuration error New found, returned by Run.
	agent   *identity.Agent
	initErr error

	mu        sync.Mutex // guards bound and apply
	bound     map[netip.AddrPort]*boundListener
	draining  sync.WaitGroup
	runCtx    context.Context
	quit      chan struct{}
	quitOnce  sync.Once
	drainOnce sync.Once
	adminAddr atomic.Pointer[string]
	// stopping is set when shutdown begins: /healthz/ready fails from then.
	stopping atomic.Bool
	// gracefulDrain is set by Drain (drain.go): /healthz/ready fails and the
	// drained listeners close each HTTP connection after its response.
	gracefulDrain atomic.Bool
	// peerMeta is the x-bowline-peer-metadata value sent to mesh peers.
	peerMeta string
	// nodeCluster is the node's cluster (rate limits' source_cluster).
	nodeCluster string

	// exchanges and copyBufs recycle per-request state and body copy buffers.
	exchanges sync.Pool
	copyBufs  sync.Pool
	// h1bufs are the buffers of lean HTTP/1.1 upstream connections.
	h1bufs *h1Bufs
	// ownURI caches the URI SAN of the current certificate (tls.go).
	ownURI atomic.Pointer[leafURI]
	// tracers are the span export pipelines (tracing.go).
	tracers *tracers
	// xdsLogs are the access logs HCMs configure (accesslog_xds.go).
	xdsLogs *xdsLogs
	// authzPool holds the connections to ext_authz services (filters_extauthz.go).
	authzPool *extauthz.Pool
	// rateLimits are the rate limit filters' state (filters_ratelimit.go).
	rateLimits *rateLimits
}

// New returns a proxy; it starts nothing.
func New(cfg Config) *Proxy {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.AccessLog == "" {
		cfg.AccessLog = accessLogJSON
	}
	if cfg.DrainDuration <= 0 {
		cfg.DrainDuration = 5 * time.Second
	}
	if cfg.Node.StatsAddress == "" {
		cfg.Node.StatsAddress = statsAddress(cfg) // status.go
	}
	var agent *identity.Agent
	var initErr error
	if cfg.CAAddress != "" {
		agent, initErr = newAgent(cfg)
		if agent != nil && cfg.Identity == nil {
			cfg.Identity = agent
		}
	}
	p := &Proxy{
		agent:   agent,
		initErr: initErr,
		cfg:     cfg,
		log:     cfg.Logger,
		bound:   map[netip.AddrPort]*boundListener{},
		quit:    make(chan struct{}),
		logKick: make(chan struct{}, 1),
	}
	p.alog = p.newAccessLogger(cfg.AccessLog, cfg.AccessLogWriter)
	p.peerMeta = encodePeerMetadata(cfg.Node)
	p.nodeCluster = cfg.Node.Node().GetCluster()
	p.rateLimits = newRateLimits(p)
	p.tracers = newTracers(p)
	p.authzPool = extauthz.NewPool(&clusterDialer{p: p})
	p.xdsLogs = &xdsLogs{p: p, by: map[xdsLogKey]*accessLogger{}}
	p.exchanges.New = func() any { return new(exchange) }
	p.h1bufs = newH1Bufs()
	p.copyBufs.New = func() any { b := make([]byte, 16<<10); return &b }
	p.metrics = newMetrics(Identity{Workload: cfg.Node.Workload, Namespace: cfg.Node.Namespace,
		App:       firstNonEmpty(cfg.Node.Labels["app"], cfg.Node.Labels["service.istio.io/canonical-name"]),
		Version:   firstNonEmpty(cfg.Node.Labels["version"], cfg.Node.Labels["service.istio.io/canonical-revision"]),
		Principal: spiffePrincipal(cmp.Or(cfg.TrustDomain, defaultTrustDomain), cfg.Node.Namespace, cfg.Node.ServiceAccount)})
	p.secMetrics = newSecurityMetrics(p.metrics.reg)
	var xdsCreds credentials.TransportCredentials
	if agent != nil && !cfg.InsecureXDS {
		xdsCreds = xdsCredentials(agent)
	}
	p.xds = xdsclient.New(xdsclient.Config{
		Address:     cfg.Discovery,
		Insecure:    cfg.InsecureXDS,
		Node:        cfg.Node.Node(),
		Logger:      cfg.Logger,
		Apply:       p.apply,
		ForceSotW:   cfg.ForceSotW,
		BackoffBase: cfg.XDSBackoffBase,
		Credentials: xdsCreds,
	})
	return p
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// defaultTrustDomain is Istio's default trust domain.
const defaultTrustDomain = "cluster.local"

// trustDomain is the mesh's trust domain as this proxy knows it: the one it
// was told (--trust-domain), else its certificate's, else Istio's default.
func (p *Proxy) trustDomain() string {
	if p.cfg.TrustDomain != "" {
		return p.cfg.TrustDomain
	}
	if own := p.ownPrincipal(); own != "" {
		if id, err := spiffeid.FromString(own); err == nil {
			return id.TrustDomain().Name()
		}
	}
	return defaultTrustDomain
}

// spiffePrincipal is Istio's workload identity spiffe://TD/ns/NS/sa/SA, or
// "" when the namespace or service account is unknown.
func spiffePrincipal(td, ns, sa string) string {
	if ns == "" || sa == "" {
		return ""
	}
	return "spiffe://" + td + "/ns/" + ns + "/sa/" + sa
}

// Ready reports whether a complete config has been applied and, with a CA,
// the first workload certificate has arrived.
func (p *Proxy) Ready() bool { return p.ready.Load() && p.identityReady() }

// AdminAddr returns the admin endpoint's bound address once Run has bound it.
func (p *Proxy) AdminAddr() string {
	if a := p.adminAddr.Load(); a != nil {
		return *a
	}
	return ""
}

// Quit asks Run to drain and return, as /quitquitquit does.
func (p *Proxy) Quit() { p.quitOnce.Do(func() { close(p.quit) }) }

// Run serves until ctx ends or Quit is called, then stops accepting, lets
// in-flight requests finish up to the drain duration and returns.
func (p *Proxy) Run(ctx context.Context) error {
	if p.initErr != nil {
		return p.initErr
	}
	defer p.rateLimits.close()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The admin and status ports outlive ctx until the drain is over, so
	// that readiness reports the drain and the admin stays reachable.
	serveCtx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServing()
	p.mu.Lock()
	p.runCtx = runCtx
	p.mu.Unlock()

	var wg sync.WaitGroup
	errc := make(chan error, 6)
	if p.cfg.AccessLogFlushInterval > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.flushAccessLogs(serveCtx)
		}()
	}
	if p.cfg.AdminAddress != "" {
		ln, err := net.Listen("tcp", p.cfg.AdminAddress)
		if err != nil {
			return fmt.Errorf("listen admin %s: %w", p.cfg.AdminAddress, err)
		}
		a := ln.Addr().String()
		p.adminAddr.Store(&a)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.serveAdmin(serveCtx, ln); err != nil {
				errc <- err
			}
		}()
	}
	var lns []net.Listener
	for _, s := range p.statusServers() {
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			cancel()
			stopServing()
			wg.Wait()
			return fmt.Errorf("listen %s: %w", s.addr, err)
		}
		lns = append(lns, ln)
		wg.Add(1)
		go func(h http.Handler) {
			defer wg.Done()
			if err := serveHTTP(serveCtx, ln, h); err != nil {
				errc <- err
			}
		}(s.h)
	}
	if p.agent != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.runAgent(runCtx); err != nil {
				errc <- err
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if !p.cfg.InsecureXDS && !p.waitIdentity(runCtx) {
			return // xDS over mTLS needs the first certificate
		}
		if err := p.xds.Run(runCtx); err != nil {
			errc <- err
		}
	}()
	var err error
	select {
	case <-ctx.Done():
		if p.cfg.TerminationDrain && !p.Draining() {
			p.Drain()
			p.log.Info("terminating after the drain duration", slog.Duration("drain_duration", p.cfg.DrainDuration))
			t := time.NewTimer(p.cfg.DrainDuration)
			select {
			case <-t.C:
			case <-p.quit:
			case err = <-errc:
			}
			t.Stop()
		}
	case <-p.quit:
	case err = <-errc:
	}
	p.stopping.Store(true)
	p.log.Info("proxy draining", slog.Duration("drain_duration", p.cfg.DrainDuration))
	p.drainAll()
	cancel()
	stopServing()
	wg.Wait()
	p.flushLogs()
	p.tracers.shutdown() // flush spans while the clusters still dial
	p.authzPool.Close()
	p.mu.Lock()
	if s := p.snap.Load(); s != nil {
		for _, c := range s.clusters {
			c.close()
		}
	}
	p.mu.Unlock()
	return err
}

// drainAll closes every listener and waits for in-flight work up to the
// drain duration.
func (p *Proxy) drainAll() {
	p.drainOnce.Do(func() {
		p.mu.Lock()
		for addr, b := range p.bound {
			delete(p.bound, addr)
			p.drainListener(b)
		}
		p.mu.Unlock()
		p.draining.Wait()
	})
}

// apply is the xDS client's Apply: it binds new listeners (an error NACKs),
// builds a snapshot, swaps it in, and drains listeners that went away.
func (p *Proxy) apply(st *xdsclient.State) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.runCtx == nil || p.runCtx.Err() != nil {
		return errors.New("proxy is not running")
	}
	if err := p.checkIdentity(st); err != nil {
		return err
	}
	want := map[netip.AddrPort]*xdsconfig.Listener{}
	for _, l := range st.Listeners() {
		if !l.BindToPort {
			continue
		}
		if other := want[l.Address]; other != nil {
			return fmt.Errorf("listener %q: field address: %s also used by listener %q", l.Name, l.Address, other.Name)
		}
		want[l.Address] = l
	}
	var opened []*boundListener
	for addr, l := range want {
		if p.bound[addr] != nil {
			continue
		}
		b, err := p.listen(l)
		if err != nil {
			for _, o := range opened {
				_ = o.ln.Close()
			}
			return fmt.Errorf("listener %q: field address: %w", l.Name, err)
		}
		opened = append(opened, b)
	}
	prev := p.snap.Load()
	s := buildSnapshot(st, prev, p.version.Add(1), &filterEnv{rl: p.rateLimits, fetcher: &jwksFetcher{p: p}, sec: p.secMetrics, authzPool: p.authzPool}, p.clientTLS, p.h1bufs, p.trustDomain())
	s.tracers = p.tracers.forSnapshot(s)
	s.withServerTLS(prev, p.serverTLS)
	p.snap.Store(s)
	for _, b := range opened {
		p.bound[b.addr] = b
		p.startListener(b)
	}
	for addr, b := range p.bound {
		if want[addr] == nil {
			delete(p.bound, addr)
			p.drainListener(b)
		}
	}
	if prev != nil {
		for name, c := range prev.clusters {
			if s.clusters[name] != c {
				c.close()
			}
		}
	}
	if st.Complete() && !p.ready.Load() {
		p.ready.Store(true)
		p.log.Info("proxy ready", slog.Int("listeners", len(s.listeners)), slog.Int("clusters", len(s.clusters)))
	}
	return nil
}

// checkIdentity NACKs TLS contexts that need the workload identity when the
// proxy has none.
func (p *Proxy) checkIdentity(st *xdsclient.State) error {
	if p.cfg.Identity != nil {
		return nil
	}
	for _, c := range st.Clusters() {
		for _, t := range c.TLSContexts() {
			if t.UsesIdentity() {
				return fmt.Errorf("cluster %q: field transport_socket: %w", c.Name, errNoIdentity)
			}
		}
	}
	for _, l := range st.Listeners() {
		chains := l.FilterChains
		if l.DefaultChain != nil {
			chains = append(chains[:len(chains):len(chains)], *l.DefaultChain)
		}
		for _, fc := range chains {
			if fc.TLS != nil && fc.TLS.UsesIdentity() {
				return fmt.Errorf("listener %q: filter chain %q: field transport_socket: %w", l.Name, fc.Name, errNoIdentity)
			}
		}
	}
	return nil
}

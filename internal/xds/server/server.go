package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// Defaults of Config.
const (
	DefaultXDSAddress    = "127.0.0.1:15010"
	DefaultDebugAddress  = "127.0.0.1:15014"
	DefaultDebounce      = 100 * time.Millisecond
	DefaultDebounceMax   = 10 * time.Second
	DefaultDomain        = "cluster.local"
	DefaultRootNamespace = "istio-system"
	// shutdownGrace bounds how long Run waits for streams to end on shutdown.
	shutdownGrace = 5 * time.Second
)

// Config configures a Server. Zero values take the defaults above.
type Config struct {
	// XDSAddress is where ADS is served (HOST:PORT; port 0 picks one).
	XDSAddress string
	// DebugAddress serves /debug/*, /metrics, /ready and the registration API.
	DebugAddress string
	// PlaintextXDSAddress, when set, also serves ADS in plaintext there
	// (istiod's 15010) beside the TLS port: no client certificate, no CA,
	// and never secrets (SDS requests are dropped, see plaintext.go).
	PlaintextXDSAddress string
	// MonitoringAddress, when set, serves only /metrics, /version and /ready
	// there (istiod's 15014 monitoring port): nothing that changes state, so
	// it can listen on the pod's address while DebugAddress stays on loopback.
	MonitoringAddress string
	// ReadyGate, when set, must also hold for /ready to answer 200 (on
	// Kubernetes: the cluster's informers have synced).
	ReadyGate func() bool
	// Insecure serves xDS in plaintext.
	Insecure bool
	// TLS serves xDS over TLS when Insecure is false (required then). ADS
	// streams must present a client certificate the config verifies
	// (tls.go); other services on the port (the CA) need none.
	TLS *tls.Config
	// Register adds services to the xDS gRPC server (the CA's
	// IstioCertificateService, as istiod serves it on 15012).
	Register func(grpc.ServiceRegistrar) error
	// ConfigDir is watched for Istio YAML; when empty, Store is used as it is fed by the caller.
	ConfigDir string
	// MeshConfigFile is a MeshConfig YAML file (istiod's --meshConfig)
	// watched beside ConfigDir; it replaces ConfigDir's ConfigMap `istio`.
	MeshConfigFile string
	// Store holds the configuration; a new one is made when nil.
	Store *config.Store
	// Validate checks objects read from ConfigDir (validation.Objects).
	Validate config.Validator
	// Registry holds the services; registry.New when nil.
	Registry Registry
	// Generator builds the mesh and the per-proxy resources. Required.
	Generator Generator
	// Debounce is the quiet period after a change before pushing.
	Debounce time.Duration
	// DebounceMax bounds how long a stream of changes can delay a push.
	DebounceMax time.Duration
	// DebounceTrailing waits the quiet period before every push, as istiod
	// does; when false (the default) an isolated change, the first when no
	// push ended within DebounceMax, is pushed at once and the changes that follow it
	// are debounced.
	DebounceTrailing bool
	// Domain is the cluster domain (for generators that need it; recorded in /debug/configz).
	Domain string
	// RootNamespace is the mesh config root namespace (recorded in /debug/configz).
	RootNamespace string
	// ID names this control plane instance in /debug/syncz (the ISTIOD column); the host name when empty.
	ID string
	// Version is the control plane's version, shown by proxy-status.
	Version string
	// Logger receives INFO/DEBUG logs; discarded when nil.
	Logger *slog.Logger
	// Handlers are served on the debug address besides /debug/*, by
	// http.ServeMux pattern (the dashboard: "GET /{$}", "/dashboard/").
	Handlers map[string]http.Handler
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Server is the ADS server with its debug endpoints. Build it with New and
// start it with Run.
type Server struct {
	cfg      Config
	log      *slog.Logger
	store    *config.Store
	source   *config.DirSource
	registry Registry
	metrics  *metrics
	tracker  *tracker
	pusher   *pusher
	cache    *wireCache
	xds      serverv3.Server

	ready atomic.Bool
	mu    sync.Mutex
	mesh  Mesh // last built
	// meshInputsAt is when the inputs of the last finished build were read:
	// every config and registry change before it is in what proxies were sent.
	meshInputsAt time.Time
	listened     chan struct{}
	xdsAddr      net.Addr
	dbgAddr      net.Addr
	plainAddr    net.Addr // nil unless PlaintextXDSAddress is set
	monAddr      net.Addr // nil unless MonitoringAddress is set
}

// New checks cfg and builds a Server. It starts nothing.
func New(cfg Config) (*Server, error) {
	if !cfg.Insecure && cfg.TLS == nil {
		return nil, errors.New("xDS over TLS needs the CA's serving certificate (Config.TLS); pass --insecure-xds to serve plaintext xDS on a trusted network")
	}
	if cfg.Generator == nil {
		return nil, errors.New("no generator configured")
	}
	if cfg.XDSAddress == "" {
		cfg.XDSAddress = DefaultXDSAddress
	}
	if cfg.DebugAddress == "" {
		cfg.DebugAddress = DefaultDebugAddress
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.DebounceMax <= 0 {
		cfg.DebounceMax = DefaultDebounceMax
	}
	if cfg.DebounceMax < cfg.Debounce {
		return nil, fmt.Errorf("debounce max %s is shorter than the debounce quiet period %s", cfg.DebounceMax, cfg.Debounce)
	}
	if cfg.Domain == "" {
		cfg.Domain = DefaultDomain
	}
	if cfg.RootNamespace == "" {
		cfg.RootNamespace = DefaultRootNamespace
	}
	if cfg.ID == "" {
		host, err := os.Hostname()
		if err != nil {
			host = "bowline"
		}
		cfg.ID = "discovery-" + host
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Store == nil {
		cfg.Store = config.NewStore()
	}
	if cfg.Registry == nil {
		cfg.Registry = registry.New(cfg.Logger)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, store: cfg.Store, registry: cfg.Registry, metrics: newMetrics(),
		tracker: newTracker(cfg.Now), listened: make(chan struct{})}
	if cs, ok := cfg.Generator.(changeStatser); ok {
		s.metrics.addChangeStats(cs.ChangeStats)
	}
	if cfg.ConfigDir != "" {
		info, err := os.Stat(cfg.ConfigDir)
		if err != nil {
			return nil, fmt.Errorf("config dir: %w", err)
		}
		if !info.IsDir() {
			return nil, fmt.Errorf("config dir %s is not a directory", cfg.ConfigDir)
		}
		if cfg.MeshConfigFile != "" {
			if info, err := os.Stat(cfg.MeshConfigFile); err != nil {
				return nil, fmt.Errorf("mesh config: %w", err)
			} else if info.IsDir() {
				return nil, fmt.Errorf("mesh config %s is a directory; give the MeshConfig YAML file", cfg.MeshConfigFile)
			}
		}
		s.source = config.NewDirSource(config.DirSourceConfig{Dir: cfg.ConfigDir, Validate: cfg.Validate, Debounce: cfg.Debounce, Logger: cfg.Logger,
			MeshConfigFile: cfg.MeshConfigFile, Options: config.ParseOptions{MeshNamespace: cfg.RootNamespace}}, s.store)
	}
	// The wire cache answers like go-control-plane's non-ADS SnapshotCache:
	// proxyless gRPC asks for single listeners by name, which ADS mode would
	// never answer (it wants every name).
	s.cache = newWireCache()
	s.pusher = newPusher(s.cache, s.log, s.metrics, cfg.Now)
	return s, nil
}

// Run serves until ctx ends, then stops gracefully. It returns an error
// if a listener cannot be opened or the config directory cannot be watched.
func (s *Server) Run(ctx context.Context) error {
	xl, err := net.Listen("tcp", s.cfg.XDSAddress)
	if err != nil {
		return fmt.Errorf("listen xds: %w", err)
	}
	dl, err := net.Listen("tcp", s.cfg.DebugAddress)
	if err != nil {
		xl.Close()
		return fmt.Errorf("listen debug: %w", err)
	}
	extra, err := s.listenExtra()
	if err != nil {
		xl.Close()
		dl.Close()
		return err
	}
	s.xdsAddr, s.dbgAddr = xl.Addr(), dl.Addr()
	if extra.plain != nil {
		s.plainAddr = extra.plain.Addr()
	}
	if extra.mon != nil {
		s.monAddr = extra.mon.Addr()
	}
	close(s.listened)
	s.log.Info("xds serving", slog.String(attrAddress, s.xdsAddr.String()))
	s.log.Info("debug serving", slog.String(attrAddress, s.dbgAddr.String()))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cb := &callbacks{log: s.log, tracker: s.tracker, pusher: s.pusher, metrics: s.metrics, now: s.cfg.Now}
	s.xds = serverv3.NewServer(ctx, s.cache, cb)
	base := []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.MaxConcurrentStreams(100000),
		grpc.ForceServerCodecV2(newCodec()), // responses reference the shared encoded resources
		// An idle stream (most of them, between pushes) keeps no write
		// buffer: at fleet scale 32 KiB per connection adds up.
		grpc.SharedWriteBuffer(true),
	}
	opts := slices.Clone(base)
	if !s.cfg.Insecure { // tls.go
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.cfg.TLS)), grpc.StreamInterceptor(requireClientCert))
	}
	gs := grpc.NewServer(opts...)
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(gs, s.xds)
	if s.cfg.Register != nil {
		if err := s.cfg.Register(gs); err != nil {
			xl.Close()
			dl.Close()
			extra.close()
			return fmt.Errorf("register services: %w", err)
		}
	}
	hs := &http.Server{Handler: s.debugHandler(), ReadHeaderTimeout: 10 * time.Second}
	var plainGS *grpc.Server
	if extra.plain != nil {
		plainGS = grpc.NewServer(append(base, grpc.StreamInterceptor(withoutSecrets))...) // plaintext.go
		discoverygrpc.RegisterAggregatedDiscoveryServiceServer(plainGS, s.xds)
	}
	var monHS *http.Server
	if extra.mon != nil {
		monHS = &http.Server{Handler: s.monitoringHandler(), ReadHeaderTimeout: 10 * time.Second}
	}

	var wg sync.WaitGroup
	errs := make(chan error, 6)
	run := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
	if s.source != nil {
		run(func() error { return s.source.Run(ctx) })
	}
	run(func() error { s.loop(ctx); return nil })
	run(func() error {
		if err := gs.Serve(xl); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("serve xds: %w", err)
		}
		return nil
	})
	run(func() error {
		if err := hs.Serve(dl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve debug: %w", err)
		}
		return nil
	})
	if plainGS != nil {
		s.log.Info("plaintext xds serving", slog.String(attrAddress, extra.plain.Addr().String()))
		run(func() error {
			if err := plainGS.Serve(extra.plain); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				return fmt.Errorf("serve plaintext xds: %w", err)
			}
			return nil
		})
	}
	if monHS != nil {
		s.log.Info("monitoring serving", slog.String(attrAddress, extra.mon.Addr().String()))
		run(func() error {
			if err := monHS.Serve(extra.mon); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve monitoring: %w", err)
			}
			return nil
		})
	}

	<-ctx.Done()
	s.log.Info("shutting down")
	stopped := make(chan struct{})
	go func() {
		gs.GracefulStop()
		if plainGS != nil {
			plainGS.GracefulStop()
		}
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(shutdownGrace):
		gs.Stop()
		if plainGS != nil {
			plainGS.Stop()
		}
		<-stopped
	}
	sctx, scancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer scancel()
	_ = hs.Shutdown(sctx)
	if monHS != nil {
		_ = monHS.Shutdown(sctx)
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// Addresses returns the xDS and debug listen addresses once Run has opened
// them, or ok=false if ctx ends first.
func (s *Server) Addresses(ctx context.Context) (xds, debug net.Addr, ok bool) {
	select {
	case <-s.listened:
		return s.xdsAddr, s.dbgAddr, true
	case <-ctx.Done():
		return nil, nil, false
	}
}

// OptionalAddresses returns the plaintext xDS and monitoring listen
// addresses once Run has opened them (nil when not configured), or
// ok=false if ctx ends first.
func (s *Server) OptionalAddresses(ctx context.Context) (plaintextXDS, monitoring net.Addr, ok bool) {
	select {
	case <-s.listened:
		return s.plainAddr, s.monAddr, true
	case <-ctx.Done():
		return nil, nil, false
	}
}

// Distribution returns, for every connected proxy id, the newest config
// store version (config.Snapshot.Version) whose configuration the proxy has
// taken in whole: every response of the push acknowledged (none rejected),
// or nothing to send it. 0 means none yet. Status writers compare it with
// the version an object changed at to say whether the object reached the
// proxy, as istiod's distribution tracking did.
func (s *Server) Distribution() map[string]uint64 {
	return s.pusher.distribution()
}

// Registry returns the service registry the server reads.
func (s *Server) Registry() Registry { return s.registry }

// Store returns the configuration store the server reads.
func (s *Server) Store() *config.Store { return s.store }

// Ready reports whether the first mesh has been built (what /ready says).
func (s *Server) Ready() bool { return s.ready.Load() }

// loop rebuilds and pushes after debounced changes of config or registry.
func (s *Server) loop(ctx context.Context) {
	// Config events from the directory source are settled: it already
	// waited for quiet (see debouncer).
	events, settledEvents := make(chan struct{}, 1), make(chan struct{}, 1)
	signal := func(ch chan struct{}) {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	cfgEvents := events
	if s.source != nil {
		cfgEvents = settledEvents
	}
	cfgCh := s.store.Subscribe(ctx)
	regCh, unsub := s.registry.Subscribe()
	defer unsub()
	// The first build happens once the config store has a version.
	lastCfg := uint64(0)
	feed := func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-cfgCh:
				s.metrics.inboundUpdates.WithLabelValues("config").Inc()
				snap := s.store.Current()
				if snap.Version != lastCfg {
					lastCfg = snap.Version
					s.registry.SetConfig(snap.Objects)
					// SetConfig signals regCh itself: take that signal, so
					// the config event keeps its kind. A registry change
					// it hides happened before, so the push includes it.
					select {
					case <-regCh:
					default:
					}
				}
				signal(cfgEvents)
			case <-regCh:
				s.metrics.inboundUpdates.WithLabelValues("registry").Inc()
				signal(events)
			}
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); feed() }()
	defer wg.Wait()
	if s.store.Current().Version > 0 { // fed before Run
		lastCfg = s.store.Current().Version
		s.registry.SetConfig(s.store.Current().Objects)
		signal(events)
	}
	d := &debouncer{quiet: s.cfg.Debounce, max: s.cfg.DebounceMax, leading: !s.cfg.DebounceTrailing, now: s.cfg.Now, after: time.After}
	d.run(ctx, events, settledEvents, func(b burst) { s.rebuild(ctx, b) })
}

// rebuild builds the mesh from the current config and services and pushes
// it to every proxy whose resources changed.
func (s *Server) rebuild(ctx context.Context, b burst) {
	cfg := s.store.Current()
	if cfg.Version == 0 {
		return // nothing loaded yet
	}
	start := s.cfg.Now()
	s.metrics.debounceTime.Observe(start.Sub(b.first).Seconds())
	mesh := s.cfg.Generator.Build(cfg, s.registry.View())
	s.mu.Lock()
	prev := s.mesh
	s.mesh = mesh
	s.mu.Unlock()
	s.metrics.meshProblems.Set(float64(len(mesh.Problems())))
	s.setProblemMetrics(cfg.Problems)
	if prev != nil && prev.Version() == mesh.Version() {
		s.log.Debug("mesh unchanged, no push", slog.String(attrVersion, mesh.Version()), slog.Int(attrEvents, b.events))
		s.pusher.unchanged(cfg.Version)
		s.setMeshInputsAt(start)
		s.ready.Store(true)
		return
	}
	res := s.pusher.push(ctx, mesh, cfg.Version)
	s.setMeshInputsAt(start)
	end := s.cfg.Now()
	s.metrics.convergence.Observe(end.Sub(b.first).Seconds())
	s.ready.Store(true)
	s.log.Info("pushed", slog.String(attrVersion, mesh.Version()), slog.Int(attrEvents, b.events),
		slog.Int(attrProxies, res.proxies), slog.Int(attrChanged, res.changed), slog.Duration(attrDuration, end.Sub(start)))
}

func (s *Server) setProblemMetrics(ps config.Problems) {
	counts := map[config.Severity]int{config.SeverityError: 0, config.SeverityWarning: 0, config.SeverityInfo: 0}
	for _, p := range ps {
		counts[p.Severity]++
	}
	for sev, n := range counts {
		s.metrics.configProblems.WithLabelValues(string(sev)).Set(float64(n))
	}
}

// setMeshInputsAt records when the inputs of the current mesh were read.
func (s *Server) setMeshInputsAt(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.meshInputsAt = t
}

// currentMesh returns the last built mesh, or nil.
func (s *Server) currentMesh() Mesh {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mesh
}

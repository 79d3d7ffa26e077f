package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/gatewayapi"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// ControlPlane is what `bowline up` needs from the in-process control plane
// (*server.Server implements it).
type ControlPlane interface {
	// Run serves until ctx ends.
	Run(ctx context.Context) error
	// Addresses returns the xDS and debug addresses once listening.
	Addresses(ctx context.Context) (xds, debug net.Addr, ok bool)
	// Store is the configuration store the control plane watches DIR into.
	Store() *config.Store
}

// Registrar registers replicas as workloads with the control plane's registry.
type Registrar interface {
	Register(w registry.Workload) error
	Deregister(id string) error
	SetHealth(id string, healthy bool) error
}

// Config configures Up.
type Config struct {
	// Dir is the directory of Istio YAML and Workload definitions (watched by the control plane).
	Dir string
	// StateDir receives up.json and logs/; Dir/.bowline when empty.
	StateDir string
	// ProxyBinary is the bowline executable started as sidecars and gateway.
	ProxyBinary string
	// IngressPort, when non-zero, serves the ingress Gateway's first HTTP port on this port instead.
	IngressPort uint32
	// IngressAddress is the IP the ingress gateway's listeners bind; 127.0.0.1 when empty.
	IngressAddress string
	// RuntimeDir is where this run registers itself for `bowline proxy-status`
	// to find; RuntimeDir() when empty.
	RuntimeDir string
	// AccessLog is passed to every proxy: off, json or text.
	AccessLog string
	// Domain is the cluster domain (cluster.local).
	Domain string
	// DrainDuration bounds how long sidecars finish in-flight requests on shutdown.
	DrainDuration time.Duration
	// Security, when set, gives every proxy a workload certificate from the
	// in-process CA and xDS over mTLS (security.go); nil runs plaintext xDS.
	Security *Security
	// Network, when set, runs each replica in its own network namespace with
	// iptables capture (`bowline up --netns`); Setup must have succeeded.
	Network *Network
	// Logger receives progress; slog.Default() when nil.
	Logger *slog.Logger
	// Ready, when set, is called once every replica is healthy for the first time
	// (or at once if there are none), with the state written to up.json.
	Ready func(*State)
}

// Up runs a whole mesh on one machine. Build it with NewUp, start it with Run.
type Up struct {
	cfg Config
	cp  ControlPlane
	reg Registrar
	log *slog.Logger

	mu       sync.Mutex
	state    State
	replicas map[string]*replica // by replica id
	ingress  *gatewayProc
	ids      proxyIdentity // tokens minted per identity (security.go)
	ports    portAllocator
	skipped  map[string]bool // skipped objects already reported
}

// NewUp checks cfg. It starts nothing.
func NewUp(cfg Config, cp ControlPlane, reg Registrar) (*Up, error) {
	if cfg.Dir == "" {
		return nil, errors.New("no directory given")
	}
	abs, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("directory %s: %w", cfg.Dir, err)
	}
	cfg.Dir = abs
	if cfg.StateDir == "" {
		cfg.StateDir = filepath.Join(cfg.Dir, ".bowline")
	}
	// Proxies and apps run in other working directories: every path handed
	// to them must be absolute.
	if cfg.StateDir, err = filepath.Abs(cfg.StateDir); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if cfg.ProxyBinary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find the bowline binary for sidecars: %w", err)
		}
		cfg.ProxyBinary = exe
	}
	if cfg.IngressAddress == "" {
		cfg.IngressAddress = "127.0.0.1"
	}
	if net.ParseIP(cfg.IngressAddress) == nil {
		return nil, fmt.Errorf("ingress address %q is not an IP address", cfg.IngressAddress)
	}
	if cfg.RuntimeDir == "" {
		cfg.RuntimeDir = RuntimeDir()
	}
	if cfg.AccessLog == "" {
		cfg.AccessLog = "json"
	}
	if cfg.Domain == "" {
		cfg.Domain = "cluster.local"
	}
	if cfg.DrainDuration == 0 {
		cfg.DrainDuration = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Up{cfg: cfg, cp: cp, reg: reg, log: cfg.Logger, replicas: map[string]*replica{}}, nil
}

// Run starts the control plane, the ingress gateway and every replica, keeps
// them in step with the directory, and stops everything when ctx ends.
func (u *Up) Run(ctx context.Context) error {
	release, err := Lock(u.cfg.StateDir)
	if err != nil {
		return err
	}
	defer release()
	if err := os.MkdirAll(filepath.Join(u.cfg.StateDir, "logs"), 0o755); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	if unregister, err := register(u.cfg.RuntimeDir, u.cfg.StateDir); err != nil {
		u.log.Warn("bowline proxy-status will not find this run without --dir", slog.String("error", err.Error()))
	} else {
		defer unregister()
	}
	if u.cfg.Network != nil {
		// Sidecars run as uid 1337, which may not be able to reach this binary.
		bin, err := u.cfg.Network.ProxyFile(u.cfg.ProxyBinary, "bowline", 0o755)
		if err != nil {
			return err
		}
		u.cfg.ProxyBinary = bin
	}
	cpCtx, cpCancel := context.WithCancel(context.Background())
	cpDone := make(chan error, 1)
	go func() { cpDone <- u.cp.Run(cpCtx) }()
	defer func() {
		cpCancel()
		<-cpDone
	}()
	xdsAddr, debugAddr, ok := u.cp.Addresses(ctx)
	if !ok {
		select {
		case err := <-cpDone:
			cpDone <- err
			return fmt.Errorf("control plane: %w", err)
		default:
			return nil
		}
	}
	u.state = State{PID: os.Getpid(), Started: time.Now().UTC(), ConfigDir: u.cfg.Dir,
		ControlPlane: ControlPlaneState{XDS: xdsAddr.String(), Debug: debugAddr.String()}}
	u.log.Info("control plane serving", slog.String("xds", xdsAddr.String()), slog.String("debug", debugAddr.String()))

	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	var wg sync.WaitGroup
	store := u.cp.Store()
	updates := store.Subscribe(runCtx)
	readyOnce := sync.Once{}
	reconciled := false
	reconcile := func() error {
		snap := store.Current()
		if snap.Version == 0 {
			return nil
		}
		u.reportSkipped(snap.Skipped)
		first := !reconciled
		reconciled = true
		if err := u.reconcile(runCtx, &wg, snap, first); err != nil {
			if first {
				return err
			}
			u.log.Warn("ingress gateway not serving the new configuration", slog.String("error", err.Error()))
		}
		if err := u.writeState(); err != nil {
			u.log.Warn("state not written", slog.String("error", err.Error()))
		}
		if u.cfg.Ready != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if u.waitHealthy(runCtx) {
					readyOnce.Do(func() { u.cfg.Ready(u.snapshotState()) })
				}
			}()
		}
		return nil
	}
	// The first configuration decides whether up can run at all: a port it
	// needs that is taken ends it; later ones are warnings and up keeps serving.
	fail := func(err error) error {
		u.stopAll()
		cancelRun()
		wg.Wait()
		return err
	}
	if err := reconcile(); err != nil {
		return fail(err)
	}
	for {
		select {
		case <-ctx.Done():
			u.log.Info("stopping")
			u.stopAll()
			cancelRun()
			wg.Wait()
			return nil
		case err := <-cpDone:
			cpDone <- err
			u.stopAll()
			cancelRun()
			wg.Wait()
			if err == nil {
				err = errors.New("stopped unexpectedly")
			}
			return fmt.Errorf("control plane: %w", err)
		case <-updates:
			if err := reconcile(); err != nil {
				return fail(err)
			}
		}
	}
}

// desiredReplica is one replica the directory asks for.
type desiredReplica struct {
	id       string // namespace/workload-index
	name     string // workload-index
	obj      *config.Object
	spec     *config.WorkloadSpec
	index    int
	specHash string
}

// reconcile starts replicas the config asks for and stops those it no longer does.
// At the first call (first) an ingress port that cannot be bound is an
// error before anything starts; later it is returned after the replicas
// are reconciled.
func (u *Up) reconcile(ctx context.Context, wg *sync.WaitGroup, snap *config.Snapshot, first bool) error {
	want := map[string]desiredReplica{}
	var gateways []*config.Object
	for _, o := range snap.Objects {
		switch o.GVK.Kind {
		case config.KindWorkload:
			spec := o.Spec.(*config.WorkloadSpec)
			for i := range spec.Replicas {
				name := o.Meta.Name + "-" + strconv.Itoa(i)
				id := o.Meta.Namespace + "/" + name
				want[id] = desiredReplica{id: id, name: name, obj: o, spec: spec, index: i, specHash: specHash(o)}
			}
		case config.KindGateway:
			if !o.IsGatewayAPI() {
				gateways = append(gateways, o)
			}
		}
	}
	// Gateways of class istio are served by the same ingress gateway
	// (gatewayapi.IngressSelector); their status goes to up.json.
	gw := gatewayapi.Translate(snap.Objects, registry.Build(snap.Objects, nil).Services(), gatewayapi.Options{Domain: u.cfg.Domain})
	for _, o := range gw.Objects {
		if o.GVK.Kind == config.KindGateway {
			gateways = append(gateways, o)
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.state.GatewayAPI = gw.Status
	// The ingress first: at start, a port it cannot bind ends the run before
	// any app starts.
	ingressErr := u.reconcileIngress(ctx, wg, gateways)
	if ingressErr != nil && first {
		return ingressErr
	}
	for id, r := range u.replicas {
		if d, ok := want[id]; !ok || d.specHash != r.specHash {
			u.log.Info("stopping replica", slog.String("replica", id))
			r.stop()
			delete(u.replicas, id)
		}
	}
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if _, ok := u.replicas[id]; ok {
			continue
		}
		r, err := u.newReplica(ctx, want[id])
		if err != nil {
			u.log.Warn("replica not started", slog.String("replica", id), slog.String("error", err.Error()))
			continue
		}
		u.replicas[id] = r
		r.start(ctx, wg)
	}
	u.writeHosts(snap) // netns mode: service names -> VIPs in every namespace
	return ingressErr
}

// reportSkipped says once, at WARN, which objects of the directory up does
// not run (Kubernetes kinds such as Deployment, Service, ServiceAccount in
// Istio's samples), and what to write instead.
func (u *Up) reportSkipped(skipped []config.Skipped) {
	if u.skipped == nil {
		u.skipped = map[string]bool{}
	}
	var fresh []string
	for _, s := range skipped {
		what := fmt.Sprintf("%s %s (%s:%d)", s.Kind, s.Name, s.File, s.Line)
		if u.skipped[what] {
			continue
		}
		u.skipped[what] = true
		fresh = append(fresh, what)
	}
	if len(fresh) == 0 {
		return
	}
	u.log.Warn("objects skipped: bowline up runs no Kubernetes objects; declare each app as a Workload (bowline.dev/v1alpha1, see docs/local.md) and its service as a ServiceEntry",
		slog.String("skipped", strings.Join(fresh, ", ")))
}

// waitHealthy waits until every current replica has been healthy once and
// the control plane has pushed that to every proxy, which has accepted it.
func (u *Up) waitHealthy(ctx context.Context) bool {
	for {
		u.mu.Lock()
		all := true
		var lastChange time.Time
		proxies := len(u.replicas)
		for _, r := range u.replicas {
			if !r.everHealthy() {
				all = false
			}
			if c := r.lastHealthChange(); c.After(lastChange) {
				lastChange = c
			}
		}
		if u.ingress != nil {
			proxies++
			if !u.ingress.ready() {
				all = false
			}
		}
		u.mu.Unlock()
		if all && u.converged(ctx, proxies, lastChange) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// syncz and configz are the parts of the control plane's /debug/syncz and
// /debug/configz that Up reads.
type syncz struct {
	Proxies []struct {
		ID    string `json:"id"`
		Types map[string]struct {
			Sent  string `json:"sent"`
			Acked string `json:"acked"`
		} `json:"types"`
	} `json:"proxies"`
}

type configz struct {
	MeshInputsAt time.Time `json:"meshInputsAt"`
}

// converged reports whether the control plane has pushed a mesh built after
// since to at least n proxies and each has accepted everything sent to it,
// and stays so for a short settle interval (a push can be handed to the
// streams a moment after the build is recorded).
func (u *Up) converged(ctx context.Context, n int, since time.Time) bool {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	get := func(path string, v any) bool {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+u.state.ControlPlane.Debug+path, nil)
		if err != nil {
			return false
		}
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(v) == nil
	}
	check := func() (string, bool) {
		var cz configz
		if !get("/debug/configz", &cz) || !cz.MeshInputsAt.After(since) {
			return "", false
		}
		var sz syncz
		if !get("/debug/syncz", &sz) || len(sz.Proxies) < n {
			return "", false
		}
		var sig []string
		for _, p := range sz.Proxies {
			for typ, ts := range p.Types {
				if ts.Sent == "" || ts.Sent != ts.Acked {
					return "", false
				}
				sig = append(sig, p.ID+" "+typ+" "+ts.Acked)
			}
		}
		sort.Strings(sig)
		return strings.Join(sig, "\n"), true
	}
	first, ok := check()
	if !ok {
		return false
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(200 * time.Millisecond):
	}
	second, ok := check()
	return ok && first == second
}

// stopAll stops every replica and the gateway (they drain), deregistering first.
func (u *Up) stopAll() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for id, r := range u.replicas {
		r.stop()
		delete(u.replicas, id)
	}
	if u.ingress != nil {
		u.ingress.stop()
		u.ingress = nil
	}
}

func (u *Up) snapshotState() *State {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.state
	s.Workloads = nil
	for _, r := range u.replicas {
		s.Workloads = append(s.Workloads, r.state)
	}
	sort.Slice(s.Workloads, func(i, j int) bool {
		if s.Workloads[i].Namespace != s.Workloads[j].Namespace {
			return s.Workloads[i].Namespace < s.Workloads[j].Namespace
		}
		return s.Workloads[i].Name < s.Workloads[j].Name
	})
	if u.ingress != nil {
		s.Ingress = u.ingress.url
		s.IngressBound = u.ingress.bound()
		s.IngressAdmin = u.ingress.admin
	}
	return &s
}

func (u *Up) writeState() error {
	if err := writePrometheusTargets(u.cfg.StateDir, prometheusTargets(u.scrapeTargets())); err != nil {
		return err
	}
	return WriteState(u.cfg.StateDir, u.snapshotState())
}

// scrapeTargets lists the ingress gateway and every replica's sidecar, sorted.
func (u *Up) scrapeTargets() []scrapeTarget {
	u.mu.Lock()
	defer u.mu.Unlock()
	var ts []scrapeTarget
	if u.ingress != nil {
		ts = append(ts, scrapeTarget{name: "istio-ingressgateway", namespace: "istio-system", admin: u.ingress.admin, labels: ingressLabels})
	}
	for _, r := range u.replicas {
		ts = append(ts, scrapeTarget{name: r.state.Name, namespace: r.state.Namespace, admin: r.state.Admin, labels: r.work.Labels})
	}
	sort.Slice(ts, func(i, j int) bool {
		if ts[i].namespace != ts[j].namespace {
			return ts[i].namespace < ts[j].namespace
		}
		return ts[i].name < ts[j].name
	})
	return ts
}

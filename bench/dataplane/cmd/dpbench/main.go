// Command dpbench is Bowline's data-plane benchmark, after Istio's
// perf/benchmark: a fortio client sends HTTP/1.1 or gRPC load through a pair
// of proxies to a fortio echo server on loopback, and the same load is sent
// directly, through two Bowline sidecars, through nginx -> nginx and through
// HAProxy -> HAProxy (TLS 1.3 between each pair). It reports added latency
// over direct, CPU per 1000 requests and RSS per proxy, and closed-loop
// throughput, as JSON under bench/results, a table in bench/README.md and
// PNG plots. bench/dataplane/run.sh installs what it needs and runs it.
//
//	go run ./bench/dataplane/cmd/dpbench -short
//	go run ./bench/dataplane/cmd/dpbench -conns 16 -duration 10s -protocols http
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the command-line flags.
type options struct {
	short        bool
	plaintext    bool
	sidecarEnv   string
	duration     time.Duration
	conns        []int
	protocols    []string
	paths        []string
	qps          float64
	tputConns    int
	tputDuration time.Duration
	profile      time.Duration
	binDir       string
	bowline      string
	results      string
	readme       string
	loadCPUs     string
	proxyCPUs    string
	commit       string
	keep         bool
	noReadme     bool
}

// env is what every step needs: tools, processes, pinning.
type env struct {
	procs     *procs
	fortio    string
	bowline   string
	nginx     string
	haproxy   string
	work      string
	loadCPUs  string
	proxyCPUs string
	tck       float64
	log       *slog.Logger
	// plaintext runs the Bowline sidecars without CA and mTLS.
	plaintext bool
	// sidecarEnv is extra environment (GOGC=..., GOMEMLIMIT=...) of the sidecars.
	sidecarEnv []string
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a bad flag (exit status 2).
type usageError struct{ error }

func parseFlags() (options, error) {
	var o options
	var conns, protocols, paths string
	flag.BoolVar(&o.short, "short", false, "quick run: 5s per point, 16 connections only, 5s throughput, 5s profile")
	flag.BoolVar(&o.plaintext, "plaintext", false, "run the Bowline path without mTLS (plaintext xDS, no CA, PeerAuthentication DISABLE); default: mTLS between the sidecars")
	flag.StringVar(&o.sidecarEnv, "sidecar-env", "", "comma-separated NAME=VALUE environment of the Bowline sidecars (e.g. GOGC=50,GOMEMLIMIT=16MiB)")
	flag.DurationVar(&o.duration, "duration", 30*time.Second, "load duration per latency point")
	flag.StringVar(&conns, "conns", "2,16,64", "comma-separated connection counts for the latency points")
	flag.StringVar(&protocols, "protocols", "http,grpc", "comma-separated protocols: http, grpc")
	flag.StringVar(&paths, "paths", "direct,bowline,nginx,haproxy", "comma-separated paths (direct is always run: it is the baseline)")
	flag.Float64Var(&o.qps, "qps", 1000, "open-loop request rate of the latency points (uniform, no catch-up)")
	flag.IntVar(&o.tputConns, "throughput-conns", 64, "connections of the closed-loop throughput point (0 = skip)")
	flag.DurationVar(&o.tputDuration, "throughput-duration", 10*time.Second, "duration of the closed-loop throughput point")
	flag.DurationVar(&o.profile, "profile", 15*time.Second, "CPU profile length of the Bowline sidecars under load (0 = skip)")
	flag.StringVar(&o.binDir, "bin", "bench/.bin", "directory with fortio (and bowline unless given)")
	flag.StringVar(&o.bowline, "bowline", "", "bowline binary (default BIN/bowline)")
	flag.StringVar(&o.results, "results", "bench/results", "where JSON, plots and profiles go")
	flag.StringVar(&o.readme, "readme", "bench/README.md", "Markdown file whose results section is replaced")
	flag.StringVar(&o.loadCPUs, "load-cpus", "0", "taskset CPU list for fortio client and server")
	flag.StringVar(&o.proxyCPUs, "proxy-cpus", "1", "taskset CPU list for all proxies and the control plane")
	flag.StringVar(&o.commit, "commit", "", "commit the bowline binary was built from (default: git describe of the work tree)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (configs, logs, fortio JSON)")
	flag.BoolVar(&o.noReadme, "no-readme", false, "do not touch the README")
	flag.Parse()
	if flag.NArg() > 0 {
		return o, usageError{fmt.Errorf("unexpected arguments %q", flag.Args())}
	}
	for _, f := range strings.Split(conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return o, usageError{fmt.Errorf("-conns: %q is not a positive number", f)}
		}
		o.conns = append(o.conns, n)
	}
	for _, p := range strings.Split(protocols, ",") {
		p = strings.TrimSpace(p)
		if p != protoHTTP && p != protoGRPC {
			return o, usageError{fmt.Errorf("-protocols: want http or grpc, got %q", p)}
		}
		o.protocols = append(o.protocols, p)
	}
	o.paths = []string{pathDirect}
	for _, p := range strings.Split(paths, ",") {
		p = strings.TrimSpace(p)
		switch p {
		case pathDirect:
		case pathBowline, pathNginx, pathHAProxy:
			o.paths = append(o.paths, p)
		default:
			return o, usageError{fmt.Errorf("-paths: unknown path %q", p)}
		}
	}
	if o.short {
		o.duration, o.conns, o.tputDuration = 5*time.Second, []int{16}, 5*time.Second
		o.profile = min(o.profile, 5*time.Second)
	}
	if o.bowline == "" {
		o.bowline = filepath.Join(o.binDir, "bowline")
	}
	return o, nil
}

func run() error {
	o, err := parseFlags()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	// Everything stops by itself: a hard deadline well past the planned run.
	planned := time.Duration(len(o.protocols)*len(o.conns)*len(o.paths))*(o.duration+2*time.Second) +
		time.Duration(len(o.protocols)*len(o.paths))*(o.tputDuration+3*time.Second) + o.profile + 2*time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 2*planned)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	start := time.Now().UTC()
	work, err := os.MkdirTemp("", "bowline-dpbench-")
	if err != nil {
		return err
	}
	if o.keep {
		log.Info("keeping work directory", slog.String("dir", work))
	} else {
		defer os.RemoveAll(work)
	}
	e := &env{procs: &procs{dir: work}, fortio: filepath.Join(o.binDir, "fortio"), bowline: o.bowline,
		work: work, tck: clkTck(), log: log, plaintext: o.plaintext}
	if o.sidecarEnv != "" {
		e.sidecarEnv = strings.Split(o.sidecarEnv, ",")
	}
	defer e.procs.stopAll()
	if err := e.findTools(o); err != nil {
		return err
	}
	rep := newReport(o, e, start, planned)
	log.Info("benchmark starting", slog.String("planned", planned.Round(time.Second).String()),
		slog.String("pinning", rep.Pinning))

	a, err := startApp(ctx, e)
	if err != nil {
		return fmt.Errorf("fortio server: %w", err)
	}
	certs, err := writeCerts(work)
	if err != nil {
		return err
	}
	var paths []*path
	var stack *bowlineStack
	for _, name := range o.paths {
		var p *path
		var err error
		switch name {
		case pathDirect:
			p = directPath(a)
		case pathBowline:
			stack, err = startBowline(ctx, e, a)
			if err == nil {
				p, err = stack.sidecars(ctx, e, "")
			}
		case pathNginx, pathHAProxy:
			if (name == pathNginx && e.nginx == "") || (name == pathHAProxy && e.haproxy == "") {
				err = fmt.Errorf("%s is not installed (bench/dataplane/run.sh installs it with apt-get)", name)
			} else {
				p, err = startPair(ctx, e, name, a, certs)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			log.Info("path skipped", slog.String("path", name), slog.String("reason", err.Error()))
			rep.Notes = append(rep.Notes, fmt.Sprintf("path %s skipped: %v", name, err))
			continue
		}
		paths = append(paths, p)
	}

	// Warm up every path and protocol (pools, TLS sessions, Go runtime):
	// not recorded.
	for _, proto := range o.protocols {
		for _, p := range paths {
			_, _ = runFortio(ctx, e, p.targets[proto], loadSpec{proto: proto, conns: 16, qps: o.qps, duration: time.Second},
				filepath.Join(work, "warmup-"+p.name+"-"+proto+".json"))
		}
	}
	for _, proto := range o.protocols {
		for _, c := range o.conns {
			for _, p := range paths {
				if err := ctx.Err(); err != nil {
					return err
				}
				spec := loadSpec{proto: proto, conns: c, qps: o.qps, duration: o.duration}
				pt := measure(ctx, e, p, spec, "latency")
				log.Info("point done", slog.String("path", p.name), slog.String("protocol", proto), slog.Int("conns", c),
					slog.String("p99_ms", fmtMs(pt.Latency["p99"])), slog.Float64("qps", round(pt.ActualQPS, 1)),
					slog.String("error", pt.Error))
				rep.Points = append(rep.Points, pt)
			}
		}
	}
	if o.tputConns > 0 {
		for _, proto := range o.protocols {
			for _, p := range paths {
				if err := ctx.Err(); err != nil {
					return err
				}
				spec := loadSpec{proto: proto, conns: o.tputConns, qps: -1, duration: o.tputDuration}
				pt := measure(ctx, e, p, spec, "throughput")
				log.Info("throughput done", slog.String("path", p.name), slog.String("protocol", proto),
					slog.Float64("qps", round(pt.ActualQPS, 0)), slog.String("error", pt.Error))
				rep.Points = append(rep.Points, pt)
			}
		}
	}
	for _, p := range paths {
		for i, pr := range p.proxies {
			u, err := readUsage(pr.pid())
			if err != nil {
				continue
			}
			rep.peak(p.name, p.roles[i], float64(u.hwmKiB)/1024)
		}
	}
	if o.profile > 0 && stack != nil && slices.ContainsFunc(paths, func(p *path) bool { return p.name == pathBowline }) {
		for _, p := range paths {
			if p.name == pathBowline {
				for _, pr := range p.proxies {
					pr.stop(5 * time.Second)
				}
			}
		}
		files, err := profileBowline(ctx, e, stack, o)
		if err != nil {
			rep.Notes = append(rep.Notes, "profiles not taken: "+err.Error())
			log.Info("profiles not taken", slog.String("reason", err.Error()))
		}
		rep.Profiles = files
	}
	e.procs.stopAll()
	rep.finish(time.Now().UTC())
	return rep.write(o, log)
}

// findTools locates fortio, bowline, nginx, haproxy and taskset.
func (e *env) findTools(o options) error {
	for _, f := range []string{e.fortio, e.bowline} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%s missing: run bench/dataplane/run.sh, which builds and installs it", f)
		}
	}
	e.nginx, _ = exec.LookPath("nginx")
	if e.nginx == "" {
		if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
			e.nginx = "/usr/sbin/nginx"
		}
	}
	e.haproxy, _ = exec.LookPath("haproxy")
	if e.haproxy == "" {
		if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
			e.haproxy = "/usr/sbin/haproxy"
		}
	}
	if ts, err := exec.LookPath("taskset"); err == nil && runtime.NumCPU() >= 2 {
		e.procs.taskset = ts
		e.loadCPUs, e.proxyCPUs = o.loadCPUs, o.proxyCPUs
	}
	return nil
}

// measure runs one load against p while sampling its proxies' CPU and RSS.
func measure(ctx context.Context, e *env, p *path, spec loadSpec, mode string) point {
	pt := point{Path: p.name, Protocol: spec.proto, Mode: mode, Conns: spec.conns, TargetQPS: spec.qps,
		DurationS: spec.duration.Seconds()}
	t, ok := p.targets[spec.proto]
	if !ok {
		pt.Error = "no target for protocol"
		return pt
	}
	before := make([]usage, len(p.proxies))
	for i, pr := range p.proxies {
		before[i], _ = readUsage(pr.pid())
	}
	samples := make([][]float64, len(p.proxies))
	sctx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
				for i, pr := range p.proxies {
					if u, err := readUsage(pr.pid()); err == nil {
						samples[i] = append(samples[i], float64(u.rssKiB)/1024)
					}
				}
			}
		}
	}()
	name := fmt.Sprintf("%s-%s-%s-c%d.json", mode, p.name, spec.proto, spec.conns)
	res, err := runFortio(ctx, e, t, spec, filepath.Join(e.work, name))
	stopSampling()
	<-sampled
	pt.loadResult = res
	if err != nil {
		pt.Error = err.Error()
	}
	for i, pr := range p.proxies {
		after, err := readUsage(pr.pid())
		pp := proxyPoint{Role: p.roles[i], Process: pr.name}
		if err != nil || pr.exited() {
			pp.Error = "proxy exited: " + pr.tail()
			pt.Proxies = append(pt.Proxies, pp)
			continue
		}
		pp.CPUSeconds = float64(after.cpuTicks-before[i].cpuTicks) / e.tck
		if res.Requests > 0 {
			pp.CPUSecondsPer1000Req = pp.CPUSeconds / (float64(res.Requests) / 1000)
		}
		pp.RSSMiB = median(append(samples[i], float64(after.rssKiB)/1024))
		pp.RSSMaxMiB = slices.Max(append(samples[i], float64(after.rssKiB)/1024))
		pp.RSSAnonMiB, pp.RSSFileMiB = float64(after.anonKiB)/1024, float64(after.fileKiB)/1024
		pp.PSSMiB = float64(after.pssKiB) / 1024
		pt.Proxies = append(pt.Proxies, pp)
	}
	return pt
}

// Command controlplane benchmarks `bowline discovery`: a synthetic mesh, N
// simulated Envoy-like ADS clients on loopback, VirtualService edits timed
// from the file write to the last client's ACK, and endpoint churn timed from
// the registration call to the last client's EDS update. Discovery runs in a
// child process so that its RSS and CPU are its own.
//
//	go run ./bench/controlplane -clients 100,500 -edits 50
//	go run ./bench/controlplane -short
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// result is one run's numbers. Memory and CPU are the discovery process's.
type result struct {
	Run string `json:"run"` // "edits" or "churn"
	// Sidecars is "distinct" (as pods differ) or "identical" (-identical).
	Sidecars        string  `json:"sidecars"`
	Clients         int     `json:"clients"`
	Services        int     `json:"services"`
	EndpointsPerSvc int     `json:"endpointsPerService"`
	RoutedServices  int     `json:"routedServices"`
	Edits           int     `json:"edits,omitempty"`
	InitialSyncMs   float64 `json:"initialSyncMs"`
	P50Ms           float64 `json:"editToLastAckP50Ms,omitempty"`
	P99Ms           float64 `json:"editToLastAckP99Ms,omitempty"`
	MaxMs           float64 `json:"editToLastAckMaxMs,omitempty"`
	// Churn runs: fraction of endpoints changed per second, for how long,
	// and the latency from a change to the last client's EDS holding it.
	ChurnPerSecond float64 `json:"churnPerSecond,omitempty"`
	ChurnSeconds   float64 `json:"churnSeconds,omitempty"`
	ChurnTick      string  `json:"churnTick,omitempty"`
	ChurnTicks     int     `json:"churnTicks,omitempty"`
	ChurnChanges   float64 `json:"churnChangesPerSecond,omitempty"` // achieved
	ChurnPushes    int     `json:"churnEdsPushesPerClient,omitempty"`
	ChurnP50Ms     float64 `json:"churnToLastClientP50Ms,omitempty"`
	ChurnP99Ms     float64 `json:"churnToLastClientP99Ms,omitempty"`
	ChurnMaxMs     float64 `json:"churnToLastClientMaxMs,omitempty"`
	ChurnCPUPerSec float64 `json:"churnCpuSecondsPerSecond,omitempty"`
	PeakRSSMiB     float64 `json:"discoveryPeakRssMiB"`
	// BaselineRSSMiB is discovery's peak RSS with the mesh built and no
	// client connected; PerSidecarKiB is (peak - baseline) / clients.
	BaselineRSSMiB  float64 `json:"discoveryBaselineRssMiB"`
	PerSidecarKiB   float64 `json:"perSidecarKiB"`
	RSSAfterSyncMiB float64 `json:"discoveryRssAfterSyncMiB"`
	RSSEndMiB       float64 `json:"discoveryRssEndMiB"`
	// Go runtime view of discovery after the initial sync (MiB): heap and
	// goroutine stacks in use, memory obtained from the OS, goroutines.
	HeapAfterSyncMiB  int     `json:"discoveryHeapInuseAfterSyncMiB"`
	StackAfterSyncMiB int     `json:"discoveryStackInuseAfterSyncMiB"`
	SysAfterSyncMiB   int     `json:"discoveryGoSysAfterSyncMiB"`
	Goroutines        int     `json:"discoveryGoroutinesAfterSync"`
	CPUSyncSeconds    float64 `json:"discoveryCpuSyncSeconds"`
	CPUSeconds        float64 `json:"discoveryCpuSeconds"` // whole run
	Debounce          string  `json:"debounce"`
	DebounceMax       string  `json:"debounceMax"`
	// LoadAvg is the machine's 1-minute load average at the start and end of the run.
	LoadAvg [2]float64 `json:"loadAvg"`
	// Aborted says why the run stopped early (discovery passed -max-rss).
	Aborted string `json:"aborted,omitempty"`
}

func main() {
	role := flag.String("role", "bench", "bench, or discovery (internal: the child process)")
	configDir := flag.String("config-dir", "", "discovery role: the config directory")
	verbose := flag.Bool("v", false, "discovery logs to stderr")
	clientsFlag := flag.String("clients", "100,500", "comma-separated client counts, one edit run each")
	edits := flag.Int("edits", 50, "VirtualService edits per run")
	churnClients := flag.Int("churn-clients", 100, "clients of the endpoint churn run (0 skips it)")
	churnFor := flag.Duration("churn-duration", 30*time.Second, "how long endpoints churn")
	churnRate := flag.Float64("churn-rate", 0.1, "fraction of endpoints changed per second")
	churnTicks := flag.String("churn-ticks", "100ms,1s", "comma-separated intervals between batches of endpoint changes, one churn run each")
	short := flag.Bool("short", false, "100 clients, 10 edits, 10 s of churn (about a minute)")
	out := flag.String("out", "bench/results/controlplane.json", "where to write the results")
	profiles := flag.String("profiles", "", "directory for discovery CPU and heap profiles per phase (none when empty)")
	debounce := flag.Duration("debounce", 100*time.Millisecond, "server debounce quiet period")
	debounceMax := flag.Duration("debounce-max", 10*time.Second, "server debounce max")
	identical := flag.Bool("identical", false, "simulate identical sidecars (same labels, IP, workload: the benchmark before issue 11) instead of distinct ones")
	maxRSS := flag.Float64("max-rss", 8192, "stop a run when discovery's RSS passes this many MiB (the machine is shared)")
	flag.Parse()
	if *role == "discovery" {
		if err := runDiscoveryChild(*configDir, *debounce, *debounceMax, *verbose); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *short {
		*clientsFlag, *edits, *churnFor = "100", 10, 10*time.Second
	}
	if *profiles != "" {
		if err := os.MkdirAll(*profiles, 0o755); err != nil {
			log.Fatal(err)
		}
	}
	spec := meshSpec{services: 1000, endpoints: 10, routed: 100, files: 10}
	opts := runOpts{debounce: *debounce, debounceMax: *debounceMax, profiles: *profiles, verbose: *verbose,
		identical: *identical, maxRSSMiB: *maxRSS}
	var results []result
	emit := func(r result) {
		results = append(results, r)
		b, _ := json.Marshal(r)
		fmt.Println(string(b))
	}
	for _, f := range strings.Split(*clientsFlag, ",") {
		if strings.TrimSpace(f) == "" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			log.Fatalf("bad -clients %q", f)
		}
		r, err := runEdits(spec, n, *edits, opts)
		if errors.Is(err, errAborted) {
			emit(r)
			continue
		}
		if err != nil {
			log.Fatal(err)
		}
		emit(r)
	}
	for _, f := range strings.Split(*churnTicks, ",") {
		if *churnClients <= 0 || *churnFor <= 0 || strings.TrimSpace(f) == "" {
			break
		}
		tick, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil {
			log.Fatalf("bad -churn-ticks %q", f)
		}
		r, err := runChurn(spec, *churnClients, *churnFor, *churnRate, tick, opts)
		if errors.Is(err, errAborted) {
			emit(r)
			continue
		}
		if err != nil {
			log.Fatal(err)
		}
		emit(r)
	}
	b, _ := json.MarshalIndent(map[string]any{"go": runtime.Version(), "cpus": runtime.NumCPU(), "results": results}, "", "  ")
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
}

type runOpts struct {
	debounce, debounceMax time.Duration
	profiles              string
	verbose               bool
	identical             bool
	maxRSSMiB             float64
}

func (o runOpts) variant() string {
	if o.identical {
		return "identical"
	}
	return "distinct"
}

// fleet is the simulated clients of one run.
type fleet struct {
	clients []*client
	errs    chan error
	done    chan struct{}
	stop    func()
}

func startFleet(addr string, n int, identical bool, probeCluster, probeAddr string) *fleet {
	f := &fleet{errs: make(chan error, n), done: make(chan struct{})}
	ctx, cancel := contextWithCancel()
	f.stop = func() { cancel(); <-f.done }
	left := n
	fin := make(chan struct{}, n)
	for i := range n {
		node := sidecarIdentity(i, identical)
		c := &client{id: node.id, node: node, probeCluster: probeCluster, probeAddr: probeAddr}
		f.clients = append(f.clients, c)
		go func() {
			defer func() { fin <- struct{}{} }()
			if err := c.run(ctx, addr); err != nil {
				f.errs <- fmt.Errorf("client %s: %w", c.id, err)
			}
		}()
	}
	go func() {
		for ; left > 0; left-- {
			<-fin
		}
		close(f.done)
	}()
	return f
}

func (f *fleet) counts() []int {
	out := make([]int, len(f.clients))
	for i, c := range f.clients {
		out[i], _ = c.state()
	}
	return out
}

// waitAll waits until every client ACKed more RDS responses than prev and
// returns the time of the last ACK.
func (f *fleet) waitAll(prev []int, limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	for {
		var last time.Time
		all := true
		for i, c := range f.clients {
			n, at := c.state()
			if n <= prev[i] {
				all = false
				break
			}
			if at.After(last) {
				last = at
			}
		}
		if all {
			return last, nil
		}
		select {
		case err := <-f.errs:
			return time.Time{}, err
		default:
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("clients did not converge in %s", limit)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func runEdits(spec meshSpec, nClients, edits int, o runOpts) (res result, err error) {
	res = result{Run: "edits", Sidecars: o.variant(), Clients: nClients, LoadAvg: [2]float64{loadAvg(), 0}, Services: spec.services, EndpointsPerSvc: spec.endpoints, RoutedServices: spec.routed,
		Edits: edits, Debounce: o.debounce.String(), DebounceMax: o.debounceMax.String()}
	dir, err := os.MkdirTemp("", "bowline-bench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	if err := writeMesh(dir, spec); err != nil {
		return res, err
	}
	d, err := startDiscovery(dir, o.debounce, o.debounceMax, o.profiles, fmt.Sprintf("edits-%s-%d-", o.variant(), nClients), o.verbose, o.maxRSSMiB)
	if err != nil {
		return res, err
	}
	defer d.stop()
	time.Sleep(time.Second) // the first build
	res.BaselineRSSMiB, _ = d.memMiB()
	defer func() {
		res.LoadAvg[1] = loadAvg()
		res.PeakRSSMiB, res.RSSEndMiB = d.memMiB()
		if a := d.aborted(); a != "" {
			res.Aborted = a
		}
		res.PerSidecarKiB = (res.PeakRSSMiB - res.BaselineRSSMiB) * 1024 / float64(nClients)
	}()
	if err := d.startCPU("sync"); err != nil {
		return res, err
	}
	cpu0 := d.cpuSeconds()
	start := time.Now()
	fl := startFleet(d.xds, nClients, o.identical, "", "")
	defer fl.stop()
	last, err := fl.waitAll(make([]int, nClients), 5*time.Minute)
	if err != nil {
		return res, d.abortedOr(err)
	}
	res.InitialSyncMs = ms(last.Sub(start))
	time.Sleep(o.debounce + 200*time.Millisecond)
	res.CPUSyncSeconds = d.cpuSeconds() - cpu0
	_, res.RSSAfterSyncMiB = d.memMiB()
	res.HeapAfterSyncMiB, res.StackAfterSyncMiB, res.SysAfterSyncMiB, res.Goroutines = d.runtimeMem()
	if err := d.stopCPU(); err != nil {
		return res, err
	}
	if err := d.heap("sync"); err != nil {
		return res, err
	}
	if err := d.startCPU("edits"); err != nil {
		return res, err
	}
	var lat []float64
	for k := range edits {
		time.Sleep(o.debounce + 50*time.Millisecond) // let the previous push settle
		prev := fl.counts()
		i := routedService(spec, k)
		t0 := time.Now()
		if err := writeRouting(dir, i, 90-(k%9)*10-10); err != nil {
			return res, err
		}
		last, err := fl.waitAll(prev, 2*time.Minute)
		if err != nil {
			return res, d.abortedOr(fmt.Errorf("edit %d: %w", k, err))
		}
		lat = append(lat, ms(last.Sub(t0)))
	}
	if err := d.stopCPU(); err != nil {
		return res, err
	}
	if err := d.heap("edits"); err != nil {
		return res, err
	}
	slices.Sort(lat)
	res.P50Ms, res.P99Ms, res.MaxMs = pct(lat, 50), pct(lat, 99), lat[len(lat)-1]
	res.CPUSeconds = d.cpuSeconds()
	return res, nil
}

// loadAvg is the 1-minute load average (/proc/loadavg).
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	return v
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// pct is the nearest-rank percentile of sorted values.
func pct(sorted []float64, p int) float64 {
	i := (p*len(sorted)+99)/100 - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

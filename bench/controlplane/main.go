// Command controlplane benchmarks `bowline discovery`: a synthetic mesh, N
// simulated Envoy-like ADS clients on loopback, and VirtualService edits
// timed from the file write to the last client's ACK.
//
//	go run ./bench/controlplane -clients 100,500 -edits 50
//	go run ./bench/controlplane -short
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/bowline-mesh/bowline/internal/config/validation"
	"github.com/bowline-mesh/bowline/internal/xds/server"
)

// result is one run's numbers.
type result struct {
	Clients         int     `json:"clients"`
	Services        int     `json:"services"`
	EndpointsPerSvc int     `json:"endpointsPerService"`
	RoutedServices  int     `json:"routedServices"`
	Edits           int     `json:"edits"`
	InitialSyncMs   float64 `json:"initialSyncMs"`
	P50Ms           float64 `json:"editToLastAckP50Ms"`
	P99Ms           float64 `json:"editToLastAckP99Ms"`
	MaxMs           float64 `json:"editToLastAckMaxMs"`
	PeakRSSMiB      float64 `json:"peakRssMiB"`
	CPUSeconds      float64 `json:"cpuSeconds"`
	Debounce        string  `json:"debounce"`
}

func main() {
	clientsFlag := flag.String("clients", "100,500", "comma-separated client counts, one run each")
	edits := flag.Int("edits", 50, "VirtualService edits per run")
	short := flag.Bool("short", false, "100 clients and 10 edits (under a minute)")
	out := flag.String("out", "bench/results/controlplane.json", "where to write the results")
	debounce := flag.Duration("debounce", 100*time.Millisecond, "server debounce quiet period")
	flag.Parse()
	if *short {
		*clientsFlag, *edits = "100", 10
	}
	spec := meshSpec{services: 1000, endpoints: 10, routed: 100, files: 10}
	var results []result
	for _, f := range strings.Split(*clientsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			log.Fatalf("bad -clients %q", f)
		}
		r, err := runOnce(spec, n, *edits, *debounce)
		if err != nil {
			log.Fatal(err)
		}
		results = append(results, r)
		b, _ := json.Marshal(r)
		fmt.Println(string(b))
	}
	b, _ := json.MarshalIndent(map[string]any{"go": runtime.Version(), "cpus": runtime.NumCPU(), "results": results}, "", "  ")
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
}

func runOnce(spec meshSpec, nClients, edits int, debounce time.Duration) (result, error) {
	res := result{Clients: nClients, Services: spec.services, EndpointsPerSvc: spec.endpoints, RoutedServices: spec.routed, Edits: edits, Debounce: debounce.String()}
	cpu0 := cpuSeconds()
	dir, err := os.MkdirTemp("", "bowline-bench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	if err := writeMesh(dir, spec); err != nil {
		return res, err
	}
	srv, err := server.New(server.Config{XDSAddress: "127.0.0.1:0", DebugAddress: "127.0.0.1:0", Insecure: true, ConfigDir: dir,
		Validate: validation.Objects, Generator: server.NewMeshGenerator("", "", nil), Debounce: debounce})
	if err != nil {
		return res, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	xa, _, ok := srv.Addresses(ctx)
	if !ok {
		return res, fmt.Errorf("server did not start")
	}
	conn, err := grpc.NewClient(xa.String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30)))
	if err != nil {
		return res, err
	}
	defer conn.Close()

	start := time.Now()
	clients := make([]*client, nClients)
	var wg sync.WaitGroup
	errs := make(chan error, nClients)
	for i := range clients {
		clients[i] = &client{id: fmt.Sprintf("sidecar~10.200.%d.%d~load-%d.default~default.svc.cluster.local", i/250, 1+i%250, i)}
		wg.Add(1)
		go func(c *client) {
			defer wg.Done()
			if err := c.run(ctx, conn); err != nil {
				errs <- fmt.Errorf("client %s: %w", c.id, err)
			}
		}(clients[i])
	}
	waitAll := func(prev []int, limit time.Duration) (time.Time, error) {
		deadline := time.Now().Add(limit)
		for {
			var last time.Time
			all := true
			for i, c := range clients {
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
			case err := <-errs:
				return time.Time{}, err
			default:
			}
			if time.Now().After(deadline) {
				return time.Time{}, fmt.Errorf("clients did not converge in %s", limit)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	counts := func() []int {
		out := make([]int, len(clients))
		for i, c := range clients {
			out[i], _ = c.state()
		}
		return out
	}
	last, err := waitAll(make([]int, nClients), 5*time.Minute)
	if err != nil {
		return res, err
	}
	res.InitialSyncMs = ms(last.Sub(start))
	var lat []float64
	for k := range edits {
		time.Sleep(debounce + 50*time.Millisecond) // let the previous push settle
		prev := counts()
		i := routedService(spec, k)
		t0 := time.Now()
		if err := writeRouting(dir, i, 90-(k%9)*10-10); err != nil {
			return res, err
		}
		last, err := waitAll(prev, 2*time.Minute)
		if err != nil {
			return res, fmt.Errorf("edit %d: %w", k, err)
		}
		lat = append(lat, ms(last.Sub(t0)))
	}
	slices.Sort(lat)
	res.P50Ms, res.P99Ms, res.MaxMs = pct(lat, 50), pct(lat, 99), lat[len(lat)-1]
	cancel()
	wg.Wait()
	if err := <-done; err != nil {
		return res, err
	}
	res.PeakRSSMiB = peakRSSMiB()
	res.CPUSeconds = cpuSeconds() - cpu0
	return res, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// pct is the nearest-rank percentile of sorted values.
func pct(sorted []float64, p int) float64 {
	i := (p*len(sorted)+99)/100 - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// peakRSSMiB reads VmHWM from /proc/self/status (the process's peak RSS so far).
func peakRSSMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// cpuSeconds is user+system CPU time of the process so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

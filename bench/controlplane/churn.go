package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"
)

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

// registrar calls discovery's workload registration API.
type registrar struct {
	base string
	http *http.Client
}

func (r *registrar) do(method, path string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(method, r.base+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, msg)
	}
	return nil
}

func (r *registrar) register(w workload) error { return r.do(http.MethodPost, "/v1/workloads", w) }

func (r *registrar) setHealth(w workload, healthy bool) error {
	return r.do(http.MethodPut, "/v1/workloads/"+w.Namespace+"/"+w.Name+"/health", map[string]bool{"healthy": healthy})
}

// parallel runs f over items with n workers and returns the first error.
func parallel[T any](items []T, n int, f func(T) error) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	ch := make(chan T)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range ch {
				if err := f(it); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for _, it := range items {
		ch <- it
	}
	close(ch)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// runChurn registers spec's endpoints as workloads, connects nClients, then
// flips the health of rate of them per second (in batches every tick) for
// dur. Each batch also re-registers a probe endpoint (svc-0000's first) with
// weight k+1; latency is from that call to the last client's EDS showing it.
func runChurn(spec meshSpec, nClients int, dur time.Duration, rate float64, tick time.Duration, o runOpts) (res result, err error) {
	res = result{Run: "churn", Sidecars: o.variant(), Clients: nClients, LoadAvg: [2]float64{loadAvg(), 0}, Services: spec.services, EndpointsPerSvc: spec.endpoints, RoutedServices: spec.routed,
		ChurnPerSecond: rate, ChurnSeconds: dur.Seconds(), ChurnTick: tick.String(), Debounce: o.debounce.String(), DebounceMax: o.debounceMax.String()}
	dir, err := os.MkdirTemp("", "bowline-bench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	if err := writeChurnMesh(dir, spec); err != nil {
		return res, err
	}
	d, err := startDiscovery(dir, o.debounce, o.debounceMax, o.profiles, fmt.Sprintf("churn-%s-%d-%s-", o.variant(), nClients, tick), o.verbose, o.maxRSSMiB)
	if err != nil {
		return res, err
	}
	defer d.stop()
	defer func() {
		res.LoadAvg[1] = loadAvg()
		res.PeakRSSMiB, res.RSSEndMiB = d.memMiB()
		if a := d.aborted(); a != "" {
			res.Aborted = a
		}
		res.PerSidecarKiB = (res.PeakRSSMiB - res.BaselineRSSMiB) * 1024 / float64(nClients)
	}()
	reg := &registrar{base: "http://" + d.debug, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	wls := churnWorkloads(spec)
	if err := parallel(wls, 8, reg.register); err != nil {
		return res, err
	}
	probe := wls[0]
	probeCluster := "outbound|8080||" + serviceHost(0)
	time.Sleep(time.Second)
	res.BaselineRSSMiB, _ = d.memMiB()
	if err := d.startCPU("churn-sync"); err != nil {
		return res, err
	}
	cpu0 := d.cpuSeconds()
	start := time.Now()
	fl := startFleet(d.xds, nClients, o.identical, probeCluster, probe.Address)
	defer fl.stop()
	last, err := fl.waitAll(make([]int, nClients), 5*time.Minute)
	if err != nil {
		return res, d.abortedOr(err)
	}
	res.InitialSyncMs = ms(last.Sub(start))
	time.Sleep(o.debounce + 200*time.Millisecond)
	res.CPUSyncSeconds = d.cpuSeconds() - cpu0
	_, res.RSSAfterSyncMiB = d.memMiB()
	if err := d.stopCPU(); err != nil {
		return res, err
	}
	eds0 := fl.clients[0].edsCount()
	if err := d.startCPU("churn"); err != nil {
		return res, err
	}

	healthy := make([]bool, len(wls))
	for i := range healthy {
		healthy[i] = true
	}
	perTick := max(1, int(rate*float64(len(wls))*tick.Seconds()+0.5))
	rnd := rand.New(rand.NewPCG(1, 2))
	var tickAt []time.Time
	cpuChurn0 := d.cpuSeconds()
	churnStart := time.Now()
	next := churnStart
	for k := 0; time.Since(churnStart) < dur; k++ {
		var batch []int
		for len(batch) < perTick {
			if i := 1 + rnd.IntN(len(wls)-1); !slices.Contains(batch, i) {
				batch = append(batch, i)
			}
		}
		if err := parallel(batch, 16, func(i int) error {
			healthy[i] = !healthy[i] // distinct i per worker
			return reg.setHealth(wls[i], healthy[i])
		}); err != nil {
			return res, err
		}
		p := probe
		p.Weight = uint32(k + 2)
		tickAt = append(tickAt, time.Now())
		if err := reg.register(p); err != nil {
			return res, err
		}
		next = next.Add(tick)
		time.Sleep(time.Until(next))
	}
	churnEnd := time.Now()
	res.ChurnChanges = float64(perTick*len(tickAt)) / churnEnd.Sub(churnStart).Seconds()
	res.ChurnCPUPerSec = (d.cpuSeconds() - cpuChurn0) / churnEnd.Sub(churnStart).Seconds()
	res.ChurnTicks = len(tickAt)
	// Wait for the last state to reach every client.
	lastW := len(tickAt) + 1
	deadline := time.Now().Add(2 * time.Minute)
	for {
		all := true
		for _, c := range fl.clients {
			if _, ok := c.probeAt(lastW); !ok {
				all = false
				break
			}
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			return res, d.abortedOr(fmt.Errorf("churn: clients did not converge on the last probe weight"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	res.ChurnPushes = fl.clients[0].edsCount() - eds0
	if err := d.stopCPU(); err != nil {
		return res, err
	}
	if err := d.heap("churn"); err != nil {
		return res, err
	}
	var lat []float64
	for k, t0 := range tickAt {
		var lastSeen time.Time
		for _, c := range fl.clients {
			at, _ := c.probeAt(k + 2)
			if at.After(lastSeen) {
				lastSeen = at
			}
		}
		lat = append(lat, ms(lastSeen.Sub(t0)))
	}
	slices.Sort(lat)
	res.ChurnP50Ms, res.ChurnP99Ms, res.ChurnMaxMs = pct(lat, 50), pct(lat, 99), lat[len(lat)-1]
	res.CPUSeconds = d.cpuSeconds()
	return res, nil
}

package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// TestTwoProxyChurn: client -> sidecar A (explicit HTTP proxy) -> sidecar B
// (inbound) -> backend, paced at 1000 req/s for 10 s while A's routes change
// 10 times a second. No request may fail. Without -race the full rate must
// be reached; under -race on two shared cores about 500 req/s is achievable,
// so the test reports the achieved rate and requires 200.
func TestTwoProxyChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("10 s load test")
	}
	const (
		idA      = "sidecar~127.0.0.1~a.default~default.svc.cluster.local"
		idB      = "sidecar~127.0.0.2~b.default~default.svc.cluster.local"
		rate     = 1000
		duration = 10 * time.Second
	)
	bk := startBackend(t, "reviews", nil)
	pa, pb := freePort(t), freePort(t)
	cp := startControlPlane(t, "")
	resB := resources(
		[]types.Resource{listenerOf(t, "inbound|9080", "127.0.0.1", pb, true, hcmFilter(t, "inbound|9080"))},
		[]types.Resource{routeConfig("inbound|9080", routeTo("/", "inbound|9080||"))},
		[]types.Resource{edsCluster("inbound|9080||")}, []types.Resource{cla("inbound|9080||", bk.addr)})
	resA := func(i int) map[resource.Type][]types.Resource {
		rc := &routev3.RouteConfiguration{Name: "outbound_http_proxy", VirtualHosts: []*routev3.VirtualHost{{
			Name: "reviews:9080", Domains: []string{"reviews:9080"},
			Routes: []*routev3.Route{routeTo(fmt.Sprintf("/unused%d", i), "outbound|9080||reviews"), routeTo("/", "outbound|9080||reviews")}}}}
		return resources(
			[]types.Resource{listenerOf(t, "outbound_http_proxy", "127.0.0.1", pa, true, hcmFilter(t, "outbound_http_proxy", "cors", "fault"))},
			[]types.Resource{rc},
			[]types.Resource{edsCluster("outbound|9080||reviews")},
			[]types.Resource{claMeta("outbound|9080||reviews", istioMeta("reviews-v1", "default", "reviews", map[string]any{"app": "reviews"}), hostPort(pb))})
	}
	cp.pushFor(t, idB, resB)
	cp.pushFor(t, idA, resA(0))
	startProxyAs(t, cp.addr, false, idB, "off")
	startProxyAs(t, cp.addr, false, idA, "off")

	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var wg sync.WaitGroup
	pushes := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for i := 1; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
			cp.pushFor(t, idA, resA(i))
			pushes++
		}
	}()
	pu, _ := url.Parse("http://" + hostPort(pa))
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu), MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	var ok, failed atomic.Int64
	var firstErr atomic.Pointer[string]
	// A pacing generator: a pacer hands out request slots on schedule; workers take
	// them. Slots missed because every worker is busy are counted as lag.
	slots := make(chan struct{}, rate)
	var missed atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(slots)
		start := time.Now()
		for i := 0; ; i++ {
			// Slot i is due at start + i/rate; late slots are sent at once so
			// the average rate holds (no coordinated omission by the pacer).
			if d := time.Until(start.Add(time.Duration(i) * time.Second / rate)); d > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			}
			if ctx.Err() != nil {
				return
			}
			select {
			case slots <- struct{}{}:
			default:
				missed.Add(1)
			}
		}
	}()
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range slots {
				resp, err := client.Get("http://reviews:9080/load")
				if err != nil {
					failed.Add(1)
					s := err.Error()
					firstErr.CompareAndSwap(nil, &s)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(b) != "reviews" {
					failed.Add(1)
					s := fmt.Sprintf("status %d body %q", resp.StatusCode, b)
					firstErr.CompareAndSwap(nil, &s)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d of %d requests failed during %d route pushes; first: %s", failed.Load(), ok.Load()+failed.Load(), pushes, *firstErr.Load())
	}
	achieved := float64(ok.Load()) / duration.Seconds()
	t.Logf("%d requests (%.0f req/s of %d target, %d slots missed), %d route pushes, 0 failures", ok.Load(), achieved, rate, missed.Load(), pushes)
	want := 0.95 * rate
	if raceEnabled {
		want = 0.2 * rate // the race detector slows both proxies several times over
	}
	if achieved < want {
		t.Errorf("achieved %.0f req/s, want at least %.0f", achieved, want)
	}
}

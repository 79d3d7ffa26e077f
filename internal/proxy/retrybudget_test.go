package proxy_test

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestRetryBudget: five requests fail at once (the backend answers their
// first attempts together, 503) and each may retry once; the retries that
// start are held by the backend until the test lets them answer 200. So
// how many retries a cluster lets be outstanding is how many requests end
// 200, and the others end with their first attempt's 503 at once:
//   - without a budget, max_retries (Istio's default, unlimited): all five;
//   - a retry_budget of 0% with min_retry_concurrency 2 (max_retries is then
//     not used): two;
//   - 40% with a budget_interval: of the 5 requests started, 2 (the retries
//     started count too, 40% of 7 is still 2).
func TestRetryBudget(t *testing.T) {
	const requests = 5
	cases := []struct {
		name    string
		budget  *clusterv3.CircuitBreakers_Thresholds_RetryBudget
		retried int
	}{
		{"no budget", nil, requests},
		{"min_retry_concurrency", &clusterv3.CircuitBreakers_Thresholds_RetryBudget{
			BudgetPercent: &typev3.Percent{Value: 0}, MinRetryConcurrency: wrapperspb.UInt32(2)}, 2},
		{"budget_interval", &clusterv3.CircuitBreakers_Thresholds_RetryBudget{
			BudgetPercent: &typev3.Percent{Value: 40}, MinRetryConcurrency: wrapperspb.UInt32(0),
			BudgetInterval: durationpb.New(time.Hour)}, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			firsts := 0
			allFirsts := make(chan struct{})
			release := make(chan struct{})
			var releaseOnce sync.Once
			t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
			var held atomic.Int64
			bk := startBackend(t, "app", func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("x-envoy-attempt-count") == "" { // a first attempt
					mu.Lock()
					if firsts++; firsts == requests {
						close(allFirsts)
					}
					mu.Unlock()
					<-allFirsts
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
				held.Add(1)
				<-release
				_, _ = io.WriteString(w, "retried")
			})
			_, addr := oneRoute(t, func(r *routev3.Route) {
				r.GetRoute().RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx", NumRetries: wrapperspb.UInt32(1),
					RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Millisecond)}}
			}, func(c *clusterv3.Cluster) {
				c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
					MaxRetries: wrapperspb.UInt32(^uint32(0)), RetryBudget: tc.budget}}}
			}, nil, bk.addr)
			client := &http.Client{}
			defer client.CloseIdleConnections()
			results := make(chan string, requests)
			for range requests {
				go func() {
					resp, err := client.Get("http://" + addr + "/")
					if err != nil {
						results <- err.Error()
						return
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					results <- http.StatusText(resp.StatusCode) + " " + string(b)
				}()
			}
			// The refused ones answer while the allowed retries are held.
			got := map[string]int{}
			for range requests - tc.retried {
				got[<-results]++
			}
			waitFor(t, "the allowed retries at the backend", func() bool { return held.Load() == int64(tc.retried) })
			releaseOnce.Do(func() { close(release) })
			for range tc.retried {
				got[<-results]++
			}
			want := map[string]int{"OK retried": tc.retried}
			if n := requests - tc.retried; n > 0 {
				want["Service Unavailable "] = n
			}
			if len(got) != len(want) || got["OK retried"] != want["OK retried"] || got["Service Unavailable "] != want["Service Unavailable "] {
				t.Errorf("answers %v, want %v", got, want)
			}
			if n := held.Load(); n != int64(tc.retried) {
				t.Errorf("%d retries reached the backend, want %d", n, tc.retried)
			}
		})
	}
}

package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
)

// rlsServer is the test's rate limit service (envoy.service.ratelimit.v3,
// standing in for Envoy's reference service): the PATH=/productpage
// descriptor of domain "ratelimit" is allowed `allow` times, then over the
// limit; everything else is OK.
type rlsServer struct {
	rlsv3.UnimplementedRateLimitServiceServer
	mu    sync.Mutex
	allow int
	calls int
}

func (s *rlsServer) ShouldRateLimit(_ context.Context, r *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	code := rlsv3.RateLimitResponse_OK
	for _, d := range r.GetDescriptors() {
		for _, e := range d.GetEntries() {
			if r.GetDomain() == "ratelimit" && e.GetKey() == "PATH" && e.GetValue() == "/productpage" {
				if s.allow <= 0 {
					code = rlsv3.RateLimitResponse_OVER_LIMIT
				} else {
					s.allow--
				}
			}
		}
	}
	return &rlsv3.RateLimitResponse{OverallCode: code, ResponseHeadersToAdd: []*corev3.HeaderValue{{Key: "x-test-rls", Value: code.String()}}}, nil
}

func (s *rlsServer) set(allow int) {
	s.mu.Lock()
	s.allow = allow
	s.mu.Unlock()
}

// ingressGet fetches path through the ingress gateway.
func (m *meshUp) ingressGet(t *testing.T, path string) (int, http.Header, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.ingress+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func (m *meshUp) writeConfig(t *testing.T, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(m.dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBookinfoUpRateLimits follows Istio's "Enabling Rate Limits using
// Envoy" task on `bowline up`: Istio's local rate limit sample (10 requests
// a minute to /productpage per productpage instance) answers 429 on the
// 11th request; a shorter bucket recovers; the task's global rate limit at
// the ingress gateway obeys a rate limit service speaking
// envoy.service.ratelimit.v3.
func TestBookinfoUpRateLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds binaries and runs processes")
	}
	bins := binaries(t)
	dir := bookinfoDir(t, bins)
	m := startUp(t, filepath.Join(bins, "bowline"), dir)
	m.eventually(t, "", 1, "the page", func(p page) bool { return p.status == http.StatusOK })

	sample, err := os.ReadFile(filepath.Join("testdata", "ratelimit", "local-rate-limit-service.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("local: the sample limits /productpage to 10 a minute", func(t *testing.T) {
		m.writeConfig(t, "local-rate-limit-service.yaml", string(sample))
		// The first answer carrying x-ratelimit-* is the first request the
		// limit counted.
		deadline := time.Now().Add(20 * time.Second)
		var remaining string
		for remaining == "" {
			if time.Now().After(deadline) {
				t.Fatal("the sample's x-ratelimit headers never showed up")
			}
			code, h, _ := m.ingressGet(t, "/productpage")
			if code != http.StatusOK {
				t.Fatalf("before the limit: %d", code)
			}
			remaining = h.Get("x-ratelimit-remaining")
			if remaining == "" {
				time.Sleep(100 * time.Millisecond)
			}
		}
		if remaining != "9" {
			t.Fatalf("first counted request: x-ratelimit-remaining %q, want 9", remaining)
		}
		for i := 2; i <= 10; i++ {
			code, h, _ := m.ingressGet(t, "/productpage")
			if want := fmt.Sprint(10 - i); code != http.StatusOK || h.Get("x-ratelimit-remaining") != want {
				t.Fatalf("request %d: %d, remaining %q; want 200 with %s left", i, code, h.Get("x-ratelimit-remaining"), want)
			}
		}
		code, h, body := m.ingressGet(t, "/productpage")
		if code != http.StatusTooManyRequests || body != "local_rate_limited" || h.Get("x-local-rate-limit") != "true" {
			t.Fatalf("request 11: %d %q x-local-rate-limit=%q; want 429 local_rate_limited with the sample's header", code, body, h.Get("x-local-rate-limit"))
		}
		// Other pages of productpage have the 100-a-minute bucket.
		if code, _, _ := m.ingressGet(t, "/api/v1/products"); code != http.StatusOK {
			t.Errorf("/api/v1/products: %d, want 200 (its own bucket)", code)
		}
		metrics := httpText(t, "http://"+m.admin(t, "productpage-v1-0")+"/stats/prometheus")
		found := false
		for _, line := range strings.Split(metrics, "\n") {
			if strings.HasPrefix(line, "istio_requests_total{") && strings.Contains(line, `reporter="destination"`) &&
				strings.Contains(line, `response_code="429"`) && strings.Contains(line, `response_flags="RL"`) {
				found = true
			}
		}
		if !found {
			t.Errorf("no istio_requests_total{reporter=destination,response_code=429,response_flags=RL} at productpage")
		}
	})

	t.Run("local: a 2-token bucket refilled every 2s recovers", func(t *testing.T) {
		short := strings.NewReplacer("max_tokens: 10\n", "max_tokens: 2\n", "tokens_per_fill: 10\n", "tokens_per_fill: 2\n",
			"fill_interval: 60s", "fill_interval: 2s").Replace(string(sample))
		m.writeConfig(t, "local-rate-limit-service.yaml", short)
		limited := false
		deadline := time.Now().Add(30 * time.Second)
		for !limited && time.Now().Before(deadline) {
			code, h, _ := m.ingressGet(t, "/productpage")
			limited = code == http.StatusTooManyRequests && h.Get("x-ratelimit-limit") == "2"
		}
		if !limited {
			t.Fatal("the 2-token bucket never limited")
		}
		recovered := false
		for !recovered && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
			code, _, _ := m.ingressGet(t, "/productpage")
			recovered = code == http.StatusOK
		}
		if !recovered {
			t.Fatal("no 200 after the bucket's refill")
		}
		if err := os.Remove(filepath.Join(m.dir, "local-rate-limit-service.yaml")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("the RateLimit kind: a 2-token bucket limits with RL and recovers", func(t *testing.T) {
		m.writeConfig(t, "ratelimit-kind.yaml", `apiVersion: bowline.dev/v1alpha1
kind: RateLimit
metadata: {name: productpage, namespace: default}
spec:
  selector: {matchLabels: {app: productpage}}
  ports: [9080]
  local:
    tokenBucket: {maxTokens: 2, tokensPerFill: 2, fillInterval: 2s}
    responseHeaders: {x-kind-limited: "true"}
    rateLimitHeaders: true
`)
		limited := false
		deadline := time.Now().Add(30 * time.Second)
		for !limited && time.Now().Before(deadline) {
			code, h, body := m.ingressGet(t, "/productpage")
			limited = code == http.StatusTooManyRequests && body == "local_rate_limited" &&
				h.Get("x-kind-limited") == "true" && h.Get("x-ratelimit-limit") == "2"
		}
		if !limited {
			t.Fatal("the RateLimit's 2-token bucket never answered 429 local_rate_limited with its headers")
		}
		recovered := false
		for !recovered && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
			code, _, _ := m.ingressGet(t, "/productpage")
			recovered = code == http.StatusOK
		}
		if !recovered {
			t.Fatal("no 200 after the RateLimit's bucket refilled")
		}
		if err := os.Remove(filepath.Join(m.dir, "ratelimit-kind.yaml")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("global: the task's EnvoyFilters at the gateway obey the rate limit service", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		rls := &rlsServer{allow: 1 << 30}
		srv := grpc.NewServer()
		rlsv3.RegisterRateLimitServiceServer(srv, rls)
		go func() { _ = srv.Serve(ln) }()
		defer srv.Stop()
		port := ln.Addr().(*net.TCPAddr).Port
		// The rate limit service joins the mesh as Kubernetes would list it.
		m.writeConfig(t, "ratelimit-service.yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratelimit, namespace: default}
spec:
  hosts: [ratelimit.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8081, name: grpc, protocol: GRPC}]
  endpoints: [{address: 127.0.0.1, ports: {grpc: %d}}]
`, port))
		task, err := os.ReadFile(filepath.Join("testdata", "ratelimit", "global-rate-limit.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		m.writeConfig(t, "global-rate-limit.yaml", string(task))
		waitFor(t, "the gateway asking the service", func() bool {
			_, h, _ := m.ingressGet(t, "/productpage")
			return h.Get("x-test-rls") == "OK"
		})
		rls.set(1)
		if code, _, _ := m.ingressGet(t, "/productpage"); code != http.StatusOK {
			t.Fatalf("within the limit: %d, want 200", code)
		}
		code, h, _ := m.ingressGet(t, "/productpage")
		if code != http.StatusTooManyRequests || h.Get("x-envoy-ratelimited") != "true" || h.Get("x-test-rls") != "OVER_LIMIT" {
			t.Fatalf("over the limit: %d x-envoy-ratelimited=%q x-test-rls=%q; want 429 from the service's OVER_LIMIT",
				code, h.Get("x-envoy-ratelimited"), h.Get("x-test-rls"))
		}
		if code, _, _ := m.ingressGet(t, "/static/bootstrap/css/bootstrap.min.css"); code == http.StatusTooManyRequests {
			t.Errorf("another path limited too")
		}
		rls.set(1 << 30)
		if code, _, _ := m.ingressGet(t, "/productpage"); code != http.StatusOK {
			t.Errorf("after the service allows again: %d, want 200", code)
		}
		// failure_mode_deny: true — with the service gone, 500.
		srv.Stop()
		waitFor(t, "500 without the service (failure_mode_deny)", func() bool {
			code, _, _ := m.ingressGet(t, "/productpage")
			return code == http.StatusInternalServerError
		})
	})
}

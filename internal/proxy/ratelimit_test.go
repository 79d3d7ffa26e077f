package proxy_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	ratelimitcfgv3 "github.com/envoyproxy/go-control-plane/envoy/config/ratelimit/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	lrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	luav3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/lua/v3"
	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// hcmWith is an HCM on RDS rds with the given filters before the router.
func hcmWith(t *testing.T, rds string, filters ...*hcmv3.HttpFilter) *listenerv3.Filter {
	t.Helper()
	filters = append(filters, &hcmv3.HttpFilter{Name: "envoy.filters.http.router",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &routerv3.Router{})}})
	hcm := &hcmv3.HttpConnectionManager{StatPrefix: "test",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads(), RouteConfigName: rds}},
		HttpFilters:    filters}
	return &listenerv3.Filter{Name: "envoy.filters.network.http_connection_manager",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, hcm)}}
}

func httpFilter(t *testing.T, name string, cfg proto.Message) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, cfg)}}
}

func full() *corev3.RuntimeFractionalPercent {
	return &corev3.RuntimeFractionalPercent{RuntimeKey: "k",
		DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}}
}

// TestLocalRateLimit is Istio's local rate limit sample on a proxy: the
// listener's filter has only a stat_prefix (it does nothing by itself), the
// route's typed_per_filter_config holds the buckets — 3 for the route, 2
// of them for /productpage (a header_value_match descriptor). Limited
// requests get 429 local_rate_limited with the configured header and
// response flag RL in istio_requests_total; x-ratelimit-* count down.
func TestLocalRateLimit(t *testing.T) {
	bk := startBackend(t, "productpage", nil)
	lp := freePort(t)
	perRoute := &lrlv3.LocalRateLimit{StatPrefix: "test_enabled",
		TokenBucket:             &typev3.TokenBucket{MaxTokens: 3, TokensPerFill: wrapperspb.UInt32(3), FillInterval: durationpb.New(time.Hour)},
		EnableXRatelimitHeaders: commonrlv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03,
		FilterEnabled:           full(), FilterEnforced: full(),
		ResponseHeadersToAdd: []*corev3.HeaderValueOption{{Append: wrapperspb.Bool(false),
			Header: &corev3.HeaderValue{Key: "x-local-rate-limit", Value: "true"}}},
		Descriptors: []*commonrlv3.LocalRateLimitDescriptor{{
			Entries:     []*commonrlv3.RateLimitDescriptor_Entry{{Key: "header_match", Value: "productpage"}},
			TokenBucket: &typev3.TokenBucket{MaxTokens: 2, TokensPerFill: wrapperspb.UInt32(2), FillInterval: durationpb.New(time.Hour)}}}}
	r := routeTo("/", "app")
	r.GetRoute().RateLimits = []*routev3.RateLimit{
		{Actions: []*routev3.RateLimit_Action{{ActionSpecifier: &routev3.RateLimit_Action_RemoteAddress_{RemoteAddress: &routev3.RateLimit_Action_RemoteAddress{}}}}},
		{Actions: []*routev3.RateLimit_Action{{ActionSpecifier: &routev3.RateLimit_Action_HeaderValueMatch_{HeaderValueMatch: &routev3.RateLimit_Action_HeaderValueMatch{
			DescriptorValue: "productpage", ExpectMatch: wrapperspb.Bool(true),
			Headers: []*routev3.HeaderMatcher{{Name: ":path", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
				StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "/productpage"}, IgnoreCase: true}}}}}}}}},
	}
	r.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.local_ratelimit": anyOf(t, perRoute)}
	e := newEnv(t, resources(
		[]types.Resource{listenerOf(t, "in", "127.0.0.1", lp, true, hcmWith(t, "80",
			httpFilter(t, "envoy.filters.http.local_ratelimit", &lrlv3.LocalRateLimit{StatPrefix: "http_local_rate_limiter"})))},
		[]types.Resource{routeConfig("80", r)},
		[]types.Resource{edsCluster("app")},
		[]types.Resource{cla("app", bk.addr)}))
	client := &http.Client{}
	defer client.CloseIdleConnections()
	waitFor(t, "listener up", func() bool {
		c, err := net.Dial("tcp", hostPort(lp))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	type answer struct {
		code                  int
		body, limited, remain string
	}
	ask := func(path string) answer {
		resp, body := get(t, client, hostPort(lp), "productpage", path, nil)
		return answer{resp.StatusCode, body, resp.Header.Get("x-local-rate-limit"), resp.Header.Get("x-ratelimit-remaining")}
	}
	for i, want := range []answer{
		{200, "productpage", "", "1"},
		{200, "productpage", "", "0"},
		{429, "local_rate_limited", "true", "0"}, // the productpage bucket is empty
	} {
		if got := ask("/productpage"); got != want {
			t.Fatalf("/productpage #%d: got %+v, want %+v", i+1, got, want)
		}
	}
	// The route's bucket gave two tokens to /productpage: one left.
	if got := ask("/static"); got != (answer{200, "productpage", "", "0"}) {
		t.Fatalf("/static #1: %+v, want 200 with 0 remaining", got)
	}
	if got := ask("/static"); got.code != 429 || got.body != "local_rate_limited" {
		t.Fatalf("/static #2: %+v, want 429", got)
	}
	e.waitMetric(t, `response_code="429",response_flags="RL"`)
}

// testRLS is a rate limit service (envoy.service.ratelimit.v3): a request
// whose PATH descriptor is /limited is over the limit.
type testRLS struct {
	rlsv3.UnimplementedRateLimitServiceServer
	mu    sync.Mutex
	seen  []string
	delay time.Duration
}

func (s *testRLS) ShouldRateLimit(ctx context.Context, r *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	s.mu.Lock()
	delay := s.delay
	var entries []string
	for _, d := range r.GetDescriptors() {
		for _, e := range d.GetEntries() {
			entries = append(entries, e.GetKey()+"="+e.GetValue())
		}
	}
	s.seen = append(s.seen, r.GetDomain()+" "+strings.Join(entries, ","))
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	code := rlsv3.RateLimitResponse_OK
	for _, e := range entries {
		if e == "PATH=/limited" {
			code = rlsv3.RateLimitResponse_OVER_LIMIT
		}
	}
	return &rlsv3.RateLimitResponse{OverallCode: code,
		ResponseHeadersToAdd: []*corev3.HeaderValue{{Key: "x-rls", Value: code.String()}}}, nil
}

func startRLS(t *testing.T) (*testRLS, string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testRLS{}
	srv := grpc.NewServer()
	rlsv3.RegisterRateLimitServiceServer(srv, s)
	go func() { _ = srv.Serve(ln) }()
	var once sync.Once
	stop := func() { once.Do(srv.Stop) }
	t.Cleanup(stop)
	return s, ln.Addr().String(), stop
}

// TestGlobalRateLimit: the ratelimit filter asks the test service with the
// route's request_headers descriptor (:path as PATH) in the filter's
// domain; OVER_LIMIT answers 429 with x-envoy-ratelimited and flag RL.
// A failing service lets requests through, unless failure_mode_deny, which
// answers 500 (flag RLSE); a service slower than the timeout fails.
func TestGlobalRateLimit(t *testing.T) {
	bk := startBackend(t, "app", nil)
	rls, rlsAddr, stopRLS := startRLS(t)
	lp := freePort(t)
	filter := func(deny bool) *hcmv3.HttpFilter {
		return httpFilter(t, "envoy.filters.http.ratelimit", &rlv3.RateLimit{Domain: "productpage-ratelimit", FailureModeDeny: deny,
			Timeout: durationpb.New(500 * time.Millisecond),
			RateLimitService: &ratelimitcfgv3.RateLimitServiceConfig{TransportApiVersion: corev3.ApiVersion_V3,
				GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
					EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "rate_limit_cluster"}}}}})
	}
	r := routeTo("/", "app")
	rc := routeConfig("80", r)
	rc.VirtualHosts[0].RateLimits = []*routev3.RateLimit{{Actions: []*routev3.RateLimit_Action{{ActionSpecifier: &routev3.RateLimit_Action_RequestHeaders_{
		RequestHeaders: &routev3.RateLimit_Action_RequestHeaders{HeaderName: ":path", DescriptorKey: "PATH"}}}}}}
	res := func(deny bool) map[string][]types.Resource {
		return resources(
			[]types.Resource{listenerOf(t, "gw", "127.0.0.1", lp, true, hcmWith(t, "80", filter(deny)))},
			[]types.Resource{rc},
			[]types.Resource{edsCluster("app"), edsCluster("rate_limit_cluster")},
			[]types.Resource{cla("app", bk.addr), cla("rate_limit_cluster", rlsAddr)})
	}
	e := newEnv(t, res(false))
	client := &http.Client{}
	defer client.CloseIdleConnections()
	ask := func(path string) (int, string, string) {
		resp, body := get(t, client, hostPort(lp), "productpage", path, nil)
		return resp.StatusCode, body, resp.Header.Get("x-envoy-ratelimited") + "/" + resp.Header.Get("x-rls")
	}
	waitFor(t, "listener up", func() bool {
		c, err := net.Dial("tcp", hostPort(lp))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if code, body, hdr := ask("/ok"); code != 200 || body != "app" || hdr != "/OK" {
		t.Fatalf("/ok: %d %q %s, want 200 from app with x-rls OK", code, body, hdr)
	}
	if code, body, hdr := ask("/limited"); code != 429 || body != "" || hdr != "true/OVER_LIMIT" {
		t.Fatalf("/limited: %d %q %s, want 429 with x-envoy-ratelimited", code, body, hdr)
	}
	rls.mu.Lock()
	seen := strings.Join(rls.seen, "; ")
	rls.mu.Unlock()
	if seen != "productpage-ratelimit PATH=/ok; productpage-ratelimit PATH=/limited" {
		t.Errorf("the service saw %q", seen)
	}
	e.waitMetric(t, `response_code="429",response_flags="RL"`)

	// Slower than the timeout: a failure, allowed (failure_mode_deny false).
	rls.mu.Lock()
	rls.delay = 5 * time.Second
	rls.mu.Unlock()
	if code, body, _ := ask("/limited"); code != 200 || body != "app" {
		t.Fatalf("timed out, fail open: %d %q, want 200", code, body)
	}
	// Down, failure_mode_deny: 500 RLSE.
	stopRLS()
	e.cp.push(t, res(true))
	waitFor(t, "failure_mode_deny in force", func() bool {
		code, _, _ := ask("/ok")
		return code == 500
	})
	e.waitMetric(t, `response_code="500",response_flags="RLSE"`)
}

// TestUnsupportedFilterNACK: an HTTP filter the proxy does not run (Lua,
// which EnvoyFilters often add) is refused with its name; the config in
// force stays.
func TestUnsupportedFilterNACK(t *testing.T) {
	bk := startBackend(t, "app", nil)
	lp := freePort(t)
	good := resources(
		[]types.Resource{listenerOf(t, "in", "127.0.0.1", lp, true, hcmWith(t, "80"))},
		[]types.Resource{routeConfig("80", routeTo("/", "app"))},
		[]types.Resource{edsCluster("app")},
		[]types.Resource{cla("app", bk.addr)})
	e := newEnv(t, good)
	bad := resources(
		[]types.Resource{listenerOf(t, "in", "127.0.0.1", lp, true, hcmWith(t, "80",
			httpFilter(t, "envoy.filters.http.lua", &luav3.Lua{})))},
		good["type.googleapis.com/envoy.config.route.v3.RouteConfiguration"], good["type.googleapis.com/envoy.config.cluster.v3.Cluster"],
		good["type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"])
	e.cp.push(t, bad)
	admin := "http://" + e.px.p.AdminAddr()
	want := `http filter \"envoy.filters.http.lua\" (type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua) unsupported`
	waitFor(t, "nack naming the filter", func() bool { return strings.Contains(httpGet(t, admin+"/config_dump"), want) })
	client := &http.Client{}
	defer client.CloseIdleConnections()
	if resp, body := get(t, client, hostPort(lp), "app", "/", nil); resp.StatusCode != 200 || body != "app" {
		t.Errorf("after the NACK: %d %q, want the old config serving", resp.StatusCode, body)
	}
}

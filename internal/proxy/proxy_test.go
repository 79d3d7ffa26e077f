package proxy_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"), goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("internal/poll.runtime_pollWait"))
}

// mesh is a control plane, backends and a proxy wired together.
type mesh struct {
	cp     *controlPlane
	px     *runningProxy
	addr   string
	bk     map[string]*backend
	flakyN atomic.Int64
	client *http.Client
}

func (m *mesh) resources(t *testing.T, rc *routev3.RouteConfiguration) map[resource.Type][]types.Resource {
	lp := int(port(m.addr))
	res := map[resource.Type][]types.Resource{
		resource.ListenerType: {httpListener(t, "outbound_http", lp, "80")},
		resource.RouteType:    {rc},
	}
	for _, n := range []string{"v1", "v2", "flaky", "slow", "dead", "empty"} {
		res[resource.ClusterType] = append(res[resource.ClusterType], edsCluster(n))
	}
	res[resource.EndpointType] = []types.Resource{
		cla("v1", m.bk["v1"].addr), cla("v2", m.bk["v2"].addr), cla("flaky", m.bk["flaky"].addr),
		cla("slow", m.bk["slow"].addr), cla("dead", "127.0.0.1:1"), cla("empty"),
	}
	return res
}

func baseRoutes(v1 string) *routev3.RouteConfiguration {
	retry := routeTo("/retry", "flaky")
	retry.GetRoute().RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx", NumRetries: wrapperspb.UInt32(3)}
	slow := routeTo("/slow", "slow")
	slow.GetRoute().Timeout = durationpb.New(100 * time.Millisecond)
	rewrite := routeTo("/rewrite", "v1")
	rewrite.GetRoute().PrefixRewrite = "/rewritten"
	rewrite.GetRoute().HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: "rewritten.host"}
	split := routeTo("/split", "")
	split.GetRoute().ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
		Clusters: []*routev3.WeightedCluster_ClusterWeight{{Name: "v1", Weight: wrapperspb.UInt32(80)}, {Name: "v2", Weight: wrapperspb.UInt32(20)}}}}
	jason := routeTo("/", "v2")
	jason.Match.Headers = []*routev3.HeaderMatcher{{Name: "x-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
		StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "jason"}}}}}
	catchAll := routeTo("/", v1)
	catchAll.RequestHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-added", Value: "yes"}}}
	catchAll.ResponseHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-resp", Value: "edited"}}}
	return &routev3.RouteConfiguration{Name: "80", VirtualHosts: []*routev3.VirtualHost{{
		Name:    "reviews",
		Domains: []string{"reviews", "reviews:80", "*.reviews.example"},
		Routes: []*routev3.Route{
			jason, retry, slow, rewrite, split,
			routeTo("/dead", "dead"), routeTo("/empty", "empty"), routeTo("/nocluster", "missing"),
			{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/direct"}},
				Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 418,
					Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "teapot"}}}}},
			{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/old"}},
				Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{PathRedirect: "/new"}}}},
			catchAll,
		},
	}}}
}

func newMesh(t *testing.T, sotw bool) *mesh {
	t.Helper()
	m := &mesh{bk: map[string]*backend{}, client: &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64},
		// Never follow redirects: they name hosts that do not exist.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	t.Cleanup(m.client.CloseIdleConnections)
	m.bk["v1"] = startBackend(t, "v1", nil)
	m.bk["v2"] = startBackend(t, "v2", nil)
	m.bk["flaky"] = startBackend(t, "flaky", func(w http.ResponseWriter, r *http.Request) {
		if m.flakyN.Add(1)%3 != 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("x-seen-attempt", r.Header.Get("x-envoy-attempt-count"))
		_, _ = io.WriteString(w, "flaky-ok")
	})
	m.bk["slow"] = startBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
		_, _ = io.WriteString(w, "slow")
	})
	m.addr = "127.0.0.1:" + itoa(freePort(t))
	m.cp = startControlPlane(t, "")
	m.cp.push(t, m.resources(t, baseRoutes("v1")))
	m.px = startProxy(t, m.cp.addr, sotw)
	return m
}

func itoa(n int) string { return strconv.Itoa(n) }

// lastLog returns the access-log line whose path is path.
func (m *mesh) lastLog(t *testing.T, path string) map[string]any {
	t.Helper()
	var found map[string]any
	deadline := time.Now().Add(2 * time.Second)
	for found == nil && time.Now().Before(deadline) {
		for _, line := range strings.Split(m.px.log.String(), "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(line), &e) == nil && e["path"] == path {
				found = e
			}
		}
		if found == nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if found == nil {
		t.Fatalf("no access log line for %s in:\n%s", path, m.px.log.String())
	}
	return found
}

func TestRoutingEndToEnd(t *testing.T) {
	for _, mode := range []struct {
		name string
		sotw bool
	}{{"delta", false}, {"sotw", true}} {
		t.Run(mode.name, func(t *testing.T) {
			m := newMesh(t, mode.sotw)
			cases := []struct {
				name, host, path string
				hdr              map[string]string
				code             int
				body             string
				flags            string
				check            func(t *testing.T, r *http.Response)
			}{
				{name: "catch-all to v1 with header edits", host: "reviews", path: "/a?x=1", code: 200, body: "v1", flags: "-",
					check: func(t *testing.T, r *http.Response) {
						if r.Header.Get("x-seen-added") != "yes" || r.Header.Get("x-resp") != "edited" {
							t.Errorf("header edits missing: added=%q resp=%q", r.Header.Get("x-seen-added"), r.Header.Get("x-resp"))
						}
						if r.Header.Get("x-seen-request-id") == "" {
							t.Errorf("x-request-id not set upstream")
						}
					}},
				{name: "host with port", host: "reviews:80", path: "/b", code: 200, body: "v1", flags: "-"},
				{name: "suffix wildcard domain", host: "a.reviews.example", path: "/c", code: 200, body: "v1", flags: "-"},
				{name: "header match to v2", host: "reviews", path: "/d", hdr: map[string]string{"x-user": "jason"}, code: 200, body: "v2", flags: "-"},
				{name: "unknown host is 404 NR", host: "nope", path: "/e", code: 404, flags: "NR"},
				{name: "direct response", host: "reviews", path: "/direct", code: 418, body: "teapot", flags: "-"},
				{name: "redirect", host: "reviews", path: "/old/x", code: 301, flags: "-", check: func(t *testing.T, r *http.Response) {
					if got := r.Header.Get("location"); got != "http://reviews/new" {
						t.Errorf("location = %q", got)
					}
				}},
				{name: "prefix and host rewrite", host: "reviews", path: "/rewrite/x", code: 200, body: "v1", flags: "-", check: func(t *testing.T, r *http.Response) {
					if r.Header.Get("x-seen-path") != "/rewritten/x" || r.Header.Get("x-seen-host") != "rewritten.host" {
						t.Errorf("seen path %q host %q", r.Header.Get("x-seen-path"), r.Header.Get("x-seen-host"))
					}
				}},
				{name: "retries recover from a failing backend", host: "reviews", path: "/retry", code: 200, body: "flaky-ok", flags: "-", check: func(t *testing.T, r *http.Response) {
					if r.Header.Get("x-seen-attempt") != "3" {
						t.Errorf("x-envoy-attempt-count upstream = %q, want 3", r.Header.Get("x-seen-attempt"))
					}
				}},
				{name: "timeout is 504 UT", host: "reviews", path: "/slow", code: 504, flags: "UT"},
				{name: "dead upstream is 503 UF", host: "reviews", path: "/dead", code: 503, flags: "UF"},
				{name: "no endpoints is 503 UH", host: "reviews", path: "/empty", code: 503, flags: "UH"},
				{name: "missing cluster is 503 NC", host: "reviews", path: "/nocluster", code: 503, flags: "NC"},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					resp, body := get(t, m.client, m.addr, tc.host, tc.path, tc.hdr)
					if resp.StatusCode != tc.code {
						t.Fatalf("status = %d, want %d (body %q)", resp.StatusCode, tc.code, body)
					}
					if tc.body != "" && body != tc.body {
						t.Errorf("body = %q, want %q", body, tc.body)
					}
					if tc.check != nil {
						tc.check(t, resp)
					}
					e := m.lastLog(t, tc.path)
					if e["response_flags"] != tc.flags {
						t.Errorf("response_flags = %v, want %s", e["response_flags"], tc.flags)
					}
					if int(e["response_code"].(float64)) != tc.code {
						t.Errorf("logged response_code = %v, want %d", e["response_code"], tc.code)
					}
				})
			}
		})
	}
}

func TestWeightedSplit(t *testing.T) {
	m := newMesh(t, false)
	counts := map[string]int{}
	const n = 1000
	for i := 0; i < n; i++ {
		_, body := get(t, m.client, m.addr, "reviews", "/split", nil)
		counts[body]++
	}
	if v1 := counts["v1"]; v1 < 720 || v1 > 880 {
		t.Errorf("v1 got %d of %d, want 80%% within 8 points (counts %v)", v1, n, counts)
	}
}

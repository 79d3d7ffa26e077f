package proxy_test

import (
	"bufio"
	"cmp"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bowline-mesh/bowline/internal/proxy"
)

// TestEndpointMetadataLabels: the generator's filter_metadata.istio
// {workload, namespace, service_account, labels} shows up as destination_*
// labels of istio_requests_total, the principal in the mesh's trust domain.
func TestEndpointMetadataLabels(t *testing.T) {
	for _, td := range []string{"", "example.org"} {
		t.Run("trust domain "+cmp.Or(td, "default"), func(t *testing.T) {
			bk := startBackend(t, "reviews-v2", nil)
			lp := freePort(t)
			md := istioMeta("reviews-v2", "default", "bookinfo-reviews", map[string]any{"app": "reviews", "version": "v2", "extra": "x"})
			res := resources(
				[]types.Resource{listenerOf(t, "out", "127.0.0.1", lp, true, hcmFilter(t, "80"))},
				[]types.Resource{routeConfig("80", routeTo("/", "outbound|9080||reviews.default.svc.cluster.local"))},
				[]types.Resource{edsCluster("outbound|9080||reviews.default.svc.cluster.local")},
				[]types.Resource{claMeta("outbound|9080||reviews.default.svc.cluster.local", md, bk.addr)})
			e := &env{cp: startControlPlane(t, ""), res: res}
			e.cp.push(t, res)
			e.px = startProxyAs(t, e.cp.addr, false, nodeID, "json", func(c *proxy.Config) { c.TrustDomain = td })
			client := &http.Client{}
			defer client.CloseIdleConnections()
			if resp, body := get(t, client, hostPort(lp), "reviews:9080", "/", nil); resp.StatusCode != 200 || body != "reviews-v2" {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			e.waitMetric(t, `destination_app="reviews",destination_principal="spiffe://`+cmp.Or(td, "cluster.local")+`/ns/default/sa/bookinfo-reviews",`+
				`destination_service="reviews.default.svc.cluster.local",destination_service_name="reviews",destination_service_namespace="default",`+
				`destination_version="v2",destination_workload="reviews-v2",destination_workload_namespace="default"`)
		})
	}
}

func corsPolicyAny(t *testing.T, forward bool) *anypb.Any {
	p := &corsv3.CorsPolicy{
		AllowOriginStringMatch: []*matcherv3.StringMatcher{
			{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "https://example.com"}},
			{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: `https://.*\.example\.org`}}},
		},
		AllowMethods: "GET,POST", AllowHeaders: "x-user", ExposeHeaders: "x-trace", MaxAge: "86400",
		AllowCredentials: wrapperspb.Bool(true),
	}
	if !forward {
		p.ForwardNotMatchingPreflights = wrapperspb.Bool(false)
	}
	return anyOf(t, p)
}

// TestCORS: preflights from allowed origins are answered by the proxy,
// others go upstream (or get a bare 200 with forward_not_matching_preflights
// false); actual responses carry allow-origin, credentials and expose headers.
func TestCORS(t *testing.T) {
	bk := startBackend(t, "app", nil)
	lp := freePort(t)
	r1 := routeTo("/", "app")
	r1.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.cors": corsPolicyAny(t, true)}
	strict := routeTo("/strict", "app")
	strict.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.cors": corsPolicyAny(t, false)}
	newEnv(t, resources(
		[]types.Resource{listenerOf(t, "out", "127.0.0.1", lp, true, hcmFilter(t, "80", "cors", "fault"))},
		[]types.Resource{routeConfig("80", strict, r1)},
		[]types.Resource{edsCluster("app")}, []types.Resource{cla("app", bk.addr)}))
	client := &http.Client{}
	defer client.CloseIdleConnections()
	do := func(method, path string, hdr map[string]string) *http.Response {
		req, _ := http.NewRequest(method, "http://"+hostPort(lp)+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	cases := []struct {
		name, method, path string
		hdr                map[string]string
		code               int
		want               map[string]string // header -> value ("" = absent)
		backend            bool
	}{
		{"preflight exact origin", "OPTIONS", "/x", map[string]string{"Origin": "https://example.com", "Access-Control-Request-Method": "POST"}, 200,
			map[string]string{"Access-Control-Allow-Origin": "https://example.com", "Access-Control-Allow-Methods": "GET,POST",
				"Access-Control-Allow-Headers": "x-user", "Access-Control-Max-Age": "86400", "Access-Control-Allow-Credentials": "true",
				"X-Backend": ""}, false},
		{"preflight regex origin", "OPTIONS", "/x", map[string]string{"Origin": "https://a.example.org", "Access-Control-Request-Method": "GET"}, 200,
			map[string]string{"Access-Control-Allow-Origin": "https://a.example.org", "X-Backend": ""}, false},
		{"preflight other origin is forwarded", "OPTIONS", "/x", map[string]string{"Origin": "https://evil.com", "Access-Control-Request-Method": "GET"}, 200,
			map[string]string{"Access-Control-Allow-Origin": "", "X-Backend": "app"}, true},
		{"preflight other origin not forwarded", "OPTIONS", "/strict", map[string]string{"Origin": "https://evil.com", "Access-Control-Request-Method": "GET"}, 200,
			map[string]string{"Access-Control-Allow-Origin": "", "X-Backend": ""}, false},
		{"actual request from allowed origin", "GET", "/x", map[string]string{"Origin": "https://example.com"}, 200,
			map[string]string{"Access-Control-Allow-Origin": "https://example.com", "Access-Control-Allow-Credentials": "true",
				"Access-Control-Expose-Headers": "x-trace", "Access-Control-Max-Age": "", "X-Backend": "app"}, true},
		{"actual request from other origin", "GET", "/x", map[string]string{"Origin": "https://evil.com"}, 200,
			map[string]string{"Access-Control-Allow-Origin": "", "X-Backend": "app"}, true},
		{"no origin", "GET", "/x", nil, 200, map[string]string{"Access-Control-Allow-Origin": "", "X-Backend": "app"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := do(tc.method, tc.path, tc.hdr)
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.code)
			}
			for k, v := range tc.want {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

// TestTCPProxy: bytes flow both ways through a tcp_proxy listener, the
// half-close reaches the upstream, and istio_tcp_* metrics count them.
func TestTCPProxy(t *testing.T) {
	up := echoServer(t)
	lp := freePort(t)
	e := newEnv(t, resources(
		[]types.Resource{listenerOf(t, "tcp", "127.0.0.1", lp, true, tcpFilter(t, "outbound|3306||db.default.svc.cluster.local"))},
		nil, []types.Resource{edsCluster("outbound|3306||db.default.svc.cluster.local")},
		[]types.Resource{claMeta("outbound|3306||db.default.svc.cluster.local",
			istioMeta("db-v1", "default", "db", map[string]any{"app": "db", "version": "v1"}), up)}))
	c := dialTCP(t, hostPort(lp))
	msg := strings.Repeat("ping-", 1000)
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || string(got) != "echo:"+msg {
		t.Fatalf("echo = %d bytes %v, want %d", len(got), err, len(msg)+5)
	}
	lbl := `destination_app="db",destination_principal="spiffe://cluster.local/ns/default/sa/db",destination_service="db.default.svc.cluster.local"`
	e.waitMetric(t, "istio_tcp_connections_opened_total{"+"connection_security_policy=\"unknown\","+lbl,
		"istio_tcp_connections_closed_total{", "istio_tcp_received_bytes_total{", "istio_tcp_sent_bytes_total{",
		"} "+itoa(len(msg)), "} "+itoa(len(msg)+5))
}

// echoServer answers every connection with "echo:" and what it read until EOF.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				_, _ = c.Write(append([]byte("echo:"), b...))
			}()
		}
	}()
	return ln.Addr().String()
}

// TestExplicitProxy: CONNECT to a TCP service port is tunnelled; an
// absolute-form request whose authority names a port served by a
// bind_to_port=false virtual listener is routed by that listener's routes.
func TestExplicitProxy(t *testing.T) {
	up := echoServer(t)
	bk := startBackend(t, "ratings", nil)
	lp, vport, tport, limport := freePort(t), freePort(t), freePort(t), freePort(t)
	e := newEnv(t, resources(
		[]types.Resource{
			listenerOf(t, "outbound_http_proxy", "127.0.0.1", lp, true, hcmFilter(t, "outbound_http_proxy")),
			listenerOf(t, "0.0.0.0_"+itoa(vport), "0.0.0.0", vport, false, hcmFilter(t, itoa(vport))),
			listenerOf(t, "0.0.0.0_"+itoa(limport), "0.0.0.0", limport, false, limitedHCM(t, itoa(vport), 4, 10)),
			listenerOf(t, "0.0.0.0_"+itoa(tport), "0.0.0.0", tport, false, tcpFilter(t, "db")),
		},
		[]types.Resource{
			&routev3.RouteConfiguration{Name: "outbound_http_proxy"},
			&routev3.RouteConfiguration{Name: itoa(vport), VirtualHosts: []*routev3.VirtualHost{{Name: "ratings",
				Domains: []string{"ratings", "ratings:" + itoa(vport)}, Routes: []*routev3.Route{routeTo("/", "ratings")}}}},
		},
		[]types.Resource{edsCluster("ratings"), edsCluster("db")},
		[]types.Resource{cla("ratings", bk.addr), cla("db", up)}))
	_ = e
	t.Run("absolute form to virtual listener", func(t *testing.T) {
		pu, _ := url.Parse("http://" + hostPort(lp))
		client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
		defer client.CloseIdleConnections()
		resp, err := client.Get("http://ratings:" + itoa(vport) + "/r/1")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "ratings" || resp.Header.Get("x-seen-path") != "/r/1" {
			t.Fatalf("got %d %q path %q", resp.StatusCode, b, resp.Header.Get("x-seen-path"))
		}
		resp, err = client.Get("http://unknown:" + itoa(vport) + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("unknown authority: %d, want 404", resp.StatusCode)
		}
	})
	t.Run("CONNECT tunnels to a TCP port", func(t *testing.T) {
		c := dialTCP(t, hostPort(lp))
		defer c.Close()
		_, _ = io.WriteString(c, "CONNECT db:"+itoa(tport)+" HTTP/1.1\r\nHost: db:"+itoa(tport)+"\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("CONNECT: %v %v", resp, err)
		}
		_, _ = io.WriteString(c, "hello")
		_ = c.(*net.TCPConn).CloseWrite()
		got, _ := io.ReadAll(br)
		if string(got) != "echo:hello" {
			t.Fatalf("tunnel got %q", got)
		}
	})
	// Requests inside a CONNECT tunnel to an HTTP port are held to that
	// listener's HCM limits (max_headers_count 10), not the defaults.
	t.Run("CONNECT to an HTTP port keeps its HCM's head limits", func(t *testing.T) {
		c := dialTCP(t, hostPort(lp))
		defer c.Close()
		authority := "ratings:" + itoa(limport)
		_, _ = io.WriteString(c, "CONNECT "+authority+" HTTP/1.1\r\nHost: "+authority+"\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("CONNECT: %v %v", resp, err)
		}
		var head strings.Builder
		head.WriteString("GET /r/1 HTTP/1.1\r\nHost: ratings\r\n")
		for i := range 11 {
			head.WriteString("X-H" + itoa(i) + ": v\r\n")
		}
		_, _ = io.WriteString(c, head.String()+"\r\n")
		resp, err = http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("12 headers through the tunnel: %d, want 431", resp.StatusCode)
		}
	})
}

// TestInboundServiceLabels: behind an inbound listener, destination_service,
// destination_service_name and destination_service_namespace come from the
// inbound cluster's filter_metadata.istio.services (the mesh's view), not
// from the Host header of a plaintext call to 127.0.0.1:PORT; for HTTP
// (istio_requests_total) and TCP (istio_tcp_*) alike.
func TestInboundServiceLabels(t *testing.T) {
	bk := startBackend(t, "reviews-v1", nil)
	echo := echoServer(t)
	hp, tp := freePort(t), freePort(t)
	services := func(host, name, ns string) *corev3.Metadata {
		st, _ := structpb.NewStruct(map[string]any{"services": []any{map[string]any{"host": host, "name": name, "namespace": ns}}})
		return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": st}}
	}
	hc, tc := edsCluster("inbound|9080||"), edsCluster("inbound|9000||")
	hc.Metadata = services("reviews.default.svc.cluster.local", "reviews", "default")
	tc.Metadata = services("db.prod.svc.cluster.local", "db", "prod")
	e := newEnv(t, resources(
		[]types.Resource{listenerOf(t, "inbound|"+itoa(hp), "127.0.0.1", hp, true, hcmFilter(t, "in")),
			listenerOf(t, "inbound|"+itoa(tp), "127.0.0.1", tp, true, tcpFilter(t, "inbound|9000||"))},
		[]types.Resource{routeConfig("in", routeTo("/", "inbound|9080||"))},
		[]types.Resource{hc, tc},
		[]types.Resource{cla("inbound|9080||", bk.addr), cla("inbound|9000||", echo)}))
	client := &http.Client{}
	defer client.CloseIdleConnections()
	if resp, body := get(t, client, hostPort(hp), hostPort(hp), "/", nil); resp.StatusCode != 200 || body != "reviews-v1" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	c := dialTCP(t, hostPort(tp))
	if _, err := io.WriteString(c, "ping"); err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).CloseWrite()
	if got, err := io.ReadAll(c); err != nil || string(got) != "echo:ping" {
		t.Fatalf("tcp echo = %q, %v", got, err)
	}
	c.Close()
	svc := `destination_service="reviews.default.svc.cluster.local",destination_service_name="reviews",destination_service_namespace="default",`
	db := `destination_service="db.prod.svc.cluster.local",destination_service_name="db",destination_service_namespace="prod",`
	e.waitMetric(t, "istio_requests_total{", svc, "istio_tcp_connections_opened_total{", db)
	for _, line := range strings.Split(e.admin(t, "/stats/prometheus"), "\n") {
		if (strings.HasPrefix(line, "istio_requests_total{") && !strings.Contains(line, svc)) ||
			(strings.HasPrefix(line, "istio_tcp_sent_bytes_total{") && !strings.Contains(line, db)) {
			t.Errorf("series with other service labels: %s", line)
		}
		if strings.HasPrefix(line, "istio_") && strings.Contains(line, "{") && !strings.Contains(line, `reporter="destination"`) {
			t.Errorf("inbound series not reported by the destination: %s", line)
		}
	}
}

// TestOutboundServiceLabels: a client sidecar reports the namespace of a
// ServiceEntry host from its outbound cluster's istio.services metadata
// (httpbin.org in default), not from the host name's labels.
func TestOutboundServiceLabels(t *testing.T) {
	bk := startBackend(t, "httpbin", nil)
	lp := freePort(t)
	c := edsCluster("outbound|80||httpbin.org")
	st, _ := structpb.NewStruct(map[string]any{"services": []any{map[string]any{"host": "httpbin.org", "name": "httpbin.org", "namespace": "default"}}})
	c.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": st}}
	e := newEnv(t, resources(
		[]types.Resource{listenerOf(t, "out", "127.0.0.1", lp, true, hcmFilter(t, "80"))},
		[]types.Resource{routeConfig("80", routeTo("/", "outbound|80||httpbin.org"))},
		[]types.Resource{c}, []types.Resource{cla("outbound|80||httpbin.org", bk.addr)}))
	client := &http.Client{}
	defer client.CloseIdleConnections()
	if resp, body := get(t, client, hostPort(lp), "httpbin.org", "/", nil); resp.StatusCode != 200 || body != "httpbin" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	e.waitMetric(t, `destination_service="httpbin.org",destination_service_name="httpbin.org",destination_service_namespace="default",`)
}

// TestFaultAbortServiceLabels: a request a fault aborts before any upstream
// is picked is reported with the route's service (Envoy resolves the
// route's cluster before the filters run), not the authority, so
// dashboards put the injected 500s on the right edge.
func TestFaultAbortServiceLabels(t *testing.T) {
	bk := startBackend(t, "ratings-v1", nil)
	lp := freePort(t)
	const cluster = "outbound|9080||ratings.default.svc.cluster.local"
	r := routeTo("/", cluster)
	r.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.fault": anyOf(t, &faultv3.HTTPFault{
		Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 500},
			Percentage: &typev3.FractionalPercent{Numerator: 100}}})}
	c := edsCluster(cluster)
	st, _ := structpb.NewStruct(map[string]any{"services": []any{map[string]any{"host": "ratings.default.svc.cluster.local", "name": "ratings", "namespace": "default"}}})
	c.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": st}}
	e := newEnv(t, resources(
		[]types.Resource{listenerOf(t, "out", "127.0.0.1", lp, true, hcmFilter(t, "80", "fault"))},
		[]types.Resource{routeConfig("80", r)}, []types.Resource{c}, []types.Resource{cla(cluster, bk.addr)}))
	client := &http.Client{}
	defer client.CloseIdleConnections()
	if resp, body := get(t, client, hostPort(lp), "ratings:9080", "/", nil); resp.StatusCode != 500 || body != "fault filter abort" {
		t.Fatalf("got %d %q, want the injected 500", resp.StatusCode, body)
	}
	e.waitMetric(t, `destination_service="ratings.default.svc.cluster.local",destination_service_name="ratings",destination_service_namespace="default",`,
		`response_code="500",response_flags="FI"`)
}

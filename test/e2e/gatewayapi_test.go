package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// This file drives real HTTP through the ingress gateway that `bowline up`
// starts for a Gateway API Gateway of class istio, with the YAML an Istio
// user writes: GatewayClass, Gateway, HTTPRoute.

// echoReply is what the echo backends answer: who served, and what they saw.
type echoReply struct {
	Name    string            `json:"name"`
	Path    string            `json:"path"`
	Host    string            `json:"host"`
	Headers map[string]string `json:"headers"`
}

// startEchoBackend answers every request with an echoReply as JSON.
func startEchoBackend(t *testing.T, name string) int {
	t.Helper()
	return startHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep := echoReply{Name: name, Path: r.URL.RequestURI(), Host: r.Host, Headers: map[string]string{}}
		for k := range r.Header {
			rep.Headers[strings.ToLower(k)] = strings.Join(r.Header.Values(k), ",")
		}
		w.Header().Set("content-type", "application/json")
		w.Header().Set("x-backend-secret", "s3cr3t")
		_ = json.NewEncoder(w).Encode(rep)
	}))
}

// echoServiceEntry makes name.default.svc.cluster.local:8080 (HTTP) a mesh
// service whose one endpoint is the loopback port of a backend.
func echoServiceEntry(name string, port int) string {
	return serviceEntry(name, 8080, "http", "HTTP", port)
}

// serviceEntry makes name.default.svc.cluster.local:number a mesh service
// whose one endpoint is a loopback port.
func serviceEntry(name string, number int, portName, protocol string, endpoint int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %[1]s, namespace: default}
spec:
  hosts: [%[1]s.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: %[2]d, name: %[3]s, protocol: %[4]s}]
  endpoints: [{address: 127.0.0.1, ports: {%[3]s: %[5]d}}]
---
`, name, number, portName, protocol, endpoint)
}

const gatewayAPIRoutes = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: istio}
spec:
  controllerName: istio.io/gateway-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  gatewayClassName: istio
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    allowedRoutes: {namespaces: {from: Same}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: echo, namespace: default}
spec:
  parentRefs: [{name: web, sectionName: http}]
  hostnames: [echo.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v2}}]
    backendRefs: [{name: echo-v2, port: 8080}]
  - matches: [{headers: [{name: x-version, value: v2}]}]
    backendRefs: [{name: echo-v2, port: 8080}]
  - matches: [{path: {type: Exact, value: /headers}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: x-set, value: set-by-route}]
        add: [{name: x-added, value: added}]
        remove: [x-remove-me]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set: [{name: x-response, value: from-gateway}]
        remove: [x-backend-secret]
    backendRefs: [{name: echo-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {hostname: new.example.com, statusCode: 301, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}
  - matches: [{path: {type: PathPrefix, value: /api}}]
    filters:
    - type: URLRewrite
      urlRewrite: {hostname: internal.example.com, path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
    backendRefs: [{name: echo-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /split}}]
    backendRefs:
    - {name: echo-v1, port: 8080, weight: 80}
    - {name: echo-v2, port: 8080, weight: 20}
  - backendRefs: [{name: echo-v1, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: other-host, namespace: default}
spec:
  parentRefs: [{name: web}]
  hostnames: [other.example.com]
  rules:
  - backendRefs: [{name: missing, port: 8080}]
  - matches: [{path: {value: /half}}]
    backendRefs: [{name: missing, port: 8080}, {name: echo-v1, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc, namespace: default}
spec:
  parentRefs: [{name: web}]
  hostnames: [grpc.example.com]
  rules:
  - matches: [{method: {service: grpc.testing.TestService, method: UnaryCall}, headers: [{name: x-version, value: v2}]}]
    backendRefs: [{name: grpc-v2, port: 9000}]
  - matches: [{method: {service: grpc.testing.TestService, method: UnaryCall}}]
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: x-routed-by, value: grpcroute}]}
    backendRefs: [{name: grpc-v1, port: 9000}]
---
# GAMMA: sidecars' traffic to the Service echo is split between two versions.
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: echo-mesh, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 8080}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /only-v2}}]
    backendRefs: [{name: echo-v2, port: 8080}]
  - backendRefs:
    - {name: echo-v1, port: 8080, weight: 50}
    - {name: echo-v2, port: 8080, weight: 50}
---
apiVersion: bowline.dev/v1alpha1
kind: Workload
metadata: {name: client, namespace: default}
spec:
  labels: {app: client}
  command: ["./bin/details"]
  ports: [{name: http, containerPort: 9080}]
`

// gwGet sends one request to the ingress with the given Host and headers.
func gwGet(t *testing.T, base, host, path string, hdr map[string]string) (*http.Response, echoReply) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s (Host %s): %v", base, path, host, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var rep echoReply
	if strings.HasPrefix(resp.Header.Get("content-type"), "application/json") {
		if err := json.Unmarshal(body, &rep); err != nil {
			t.Fatalf("GET %s: body %q: %v", path, body, err)
		}
	}
	return resp, rep
}

func TestGatewayAPIHTTPRouteUp(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds binaries and runs processes")
	}
	bins := binaries(t)
	v1, v2 := startEchoBackend(t, "echo-v1"), startEchoBackend(t, "echo-v2")
	dir := filepath.Join(t.TempDir(), "mesh")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	g1, g2 := startBackend(t, "grpc-v1"), startBackend(t, "grpc-v2")
	writeFile(t, filepath.Join(dir, "services.yaml"), echoServiceEntry("echo", v1)+echoServiceEntry("echo-v1", v1)+echoServiceEntry("echo-v2", v2)+
		serviceEntry("grpc-v1", 9000, "grpc", "GRPC", g1)+serviceEntry("grpc-v2", 9000, "grpc", "GRPC", g2))
	if err := os.Symlink(filepath.Join(bins, "bookinfo"), filepath.Join(dir, "bin")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "gateway-api.yaml"), gatewayAPIRoutes)
	m := startUp(t, filepath.Join(bins, "bowline"), dir)
	const host = "echo.example.com"
	waitUntil(t, "the HTTPRoute served at the gateway", func() bool {
		resp, rep := gwGet(t, m.ingress, host, "/", nil)
		return resp.StatusCode == http.StatusOK && rep.Name == "echo-v1"
	})

	t.Run("path and header matches pick the backend", func(t *testing.T) {
		for _, c := range []struct {
			path string
			hdr  map[string]string
			want string
		}{
			{"/v2", nil, "echo-v2"},
			{"/v2/deeper", nil, "echo-v2"},
			{"/v2x", nil, "echo-v1"}, // a PathPrefix matches whole segments
			{"/anything", map[string]string{"x-version": "v2"}, "echo-v2"},
			{"/anything", map[string]string{"x-version": "v3"}, "echo-v1"},
		} {
			resp, rep := gwGet(t, m.ingress, host, c.path, c.hdr)
			if resp.StatusCode != http.StatusOK || rep.Name != c.want {
				t.Errorf("GET %s %v: %d from %q, want 200 from %s", c.path, c.hdr, resp.StatusCode, rep.Name, c.want)
			}
		}
	})

	t.Run("request and response header modifiers", func(t *testing.T) {
		resp, rep := gwGet(t, m.ingress, host, "/headers", map[string]string{"x-set": "client", "x-added": "client", "x-remove-me": "gone"})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if got := rep.Headers["x-set"]; got != "set-by-route" {
			t.Errorf("backend saw x-set %q, want set-by-route (set overwrites)", got)
		}
		if got := rep.Headers["x-added"]; got != "client,added" {
			t.Errorf("backend saw x-added %q, want client,added (add appends)", got)
		}
		if _, ok := rep.Headers["x-remove-me"]; ok {
			t.Errorf("backend saw x-remove-me, want it removed")
		}
		if got := resp.Header.Get("x-response"); got != "from-gateway" {
			t.Errorf("response x-response %q, want from-gateway", got)
		}
		if got := resp.Header.Get("x-backend-secret"); got != "" {
			t.Errorf("response x-backend-secret %q, want it removed", got)
		}
	})

	t.Run("redirect", func(t *testing.T) {
		resp, _ := gwGet(t, m.ingress, host, "/old/page?q=1", nil)
		if resp.StatusCode != http.StatusMovedPermanently {
			t.Fatalf("status %d, want 301", resp.StatusCode)
		}
		loc := resp.Header.Get("location")
		if !strings.HasPrefix(loc, "http://new.example.com") || !strings.HasSuffix(loc, "/new/page?q=1") {
			t.Errorf("location %q, want http://new.example.com[:port]/new/page?q=1", loc)
		}
	})

	t.Run("rewrite", func(t *testing.T) {
		for path, want := range map[string]string{"/api/users?id=7": "/users?id=7", "/api": "/"} {
			resp, rep := gwGet(t, m.ingress, host, path, nil)
			if resp.StatusCode != http.StatusOK || rep.Path != want || rep.Host != "internal.example.com" {
				t.Errorf("GET %s: %d, backend saw %s with Host %s; want %s with Host internal.example.com", path, resp.StatusCode, rep.Path, rep.Host, want)
			}
		}
	})

	t.Run("weighted split 80/20", func(t *testing.T) {
		const n = 200
		counts := map[string]int{}
		for range n {
			resp, rep := gwGet(t, m.ingress, host, "/split", nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			counts[rep.Name]++
		}
		if !within(counts["echo-v1"], n, 0.8, 0.1) || !within(counts["echo-v2"], n, 0.2, 0.1) {
			t.Errorf("split %v over %d requests, want about 80%% echo-v1 and 20%% echo-v2", counts, n)
		}
	})

	t.Run("hostnames", func(t *testing.T) {
		if resp, _ := gwGet(t, m.ingress, "unknown.example.com", "/", nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("a host no route names: %d, want 404", resp.StatusCode)
		}
		if resp, _ := gwGet(t, m.ingress, "other.example.com", "/", nil); resp.StatusCode != http.StatusInternalServerError {
			t.Errorf("a route whose only backend does not exist: %d, want 500", resp.StatusCode)
		}
		const n = 100
		codes := map[int]int{}
		for range n {
			resp, _ := gwGet(t, m.ingress, "other.example.com", "/half", nil)
			codes[resp.StatusCode]++
		}
		if !within(codes[http.StatusOK], n, 0.5, 0.15) || !within(codes[http.StatusInternalServerError], n, 0.5, 0.15) {
			t.Errorf("a split with one missing backend answered %v over %d requests, want about half 200 and half 500", codes, n)
		}
	})

	t.Run("GRPCRoute to a gRPC backend", func(t *testing.T) {
		addr := strings.TrimPrefix(m.ingress, "http://")
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("grpc.example.com"))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		client := testgrpc.NewTestServiceClient(cc)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var hdr metadata.MD
		resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.Header(&hdr))
		if err != nil || resp.GetHostname() != "grpc-v1" {
			t.Fatalf("UnaryCall: %v from %q, want grpc-v1", err, resp.GetHostname())
		}
		if got := hdr.Get("x-routed-by"); len(got) != 1 || got[0] != "grpcroute" {
			t.Errorf("response header x-routed-by %v, want [grpcroute]", got)
		}
		resp, err = client.UnaryCall(metadata.AppendToOutgoingContext(ctx, "x-version", "v2"), &testgrpc.SimpleRequest{})
		if err != nil || resp.GetHostname() != "grpc-v2" {
			t.Errorf("UnaryCall with x-version v2: %v from %q, want grpc-v2", err, resp.GetHostname())
		}
		if _, err := client.EmptyCall(ctx, &testgrpc.Empty{}); status.Code(err) != codes.Unimplemented {
			t.Errorf("EmptyCall (no rule matches it): %v, want Unimplemented (404 from the gateway)", err)
		}
	})

	t.Run("GAMMA: a route on a Service splits sidecar traffic 50/50", func(t *testing.T) {
		proxy := m.outboundProxy(t, "client-0")
		client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy), DisableKeepAlives: true}, Timeout: 10 * time.Second}
		get := func(path string) echoReply {
			t.Helper()
			resp, err := client.Get("http://echo.default.svc.cluster.local:8080" + path)
			if err != nil {
				t.Fatalf("GET %s through the client's sidecar: %v", path, err)
			}
			defer resp.Body.Close()
			var rep echoReply
			if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s through the client's sidecar: %d, %v", path, resp.StatusCode, err)
			}
			return rep
		}
		const n = 200
		counts := map[string]int{}
		for range n {
			counts[get("/").Name]++
		}
		if !within(counts["echo-v1"], n, 0.5, 0.12) || !within(counts["echo-v2"], n, 0.5, 0.12) {
			t.Errorf("split %v over %d requests, want about 50/50 between echo-v1 and echo-v2", counts, n)
		}
		for range 5 {
			if got := get("/only-v2/x").Name; got != "echo-v2" {
				t.Errorf("GET /only-v2/x from %s, want echo-v2", got)
			}
		}
	})

	t.Run("a route edited while up runs takes effect", func(t *testing.T) {
		edited := strings.Replace(gatewayAPIRoutes, "  rules:\n  - backendRefs: [{name: missing, port: 8080}]", "  rules:\n  - backendRefs: [{name: echo-v2, port: 8080}]", 1)
		if edited == gatewayAPIRoutes {
			t.Fatal("edit did not apply")
		}
		writeAtomic(t, filepath.Join(dir, "gateway-api.yaml"), edited)
		waitUntil(t, "other.example.com served by echo-v2", func() bool {
			resp, rep := gwGet(t, m.ingress, "other.example.com", "/", nil)
			return resp.StatusCode == http.StatusOK && rep.Name == "echo-v2"
		})
		writeAtomic(t, filepath.Join(dir, "gateway-api.yaml"), gatewayAPIRoutes)
		waitUntil(t, "other.example.com back to 500", func() bool {
			resp, _ := gwGet(t, m.ingress, "other.example.com", "/", nil)
			return resp.StatusCode == http.StatusInternalServerError
		})
	})

	t.Run("bowline status shows the conditions", func(t *testing.T) {
		out := m.bowline(t, filepath.Dir(dir), "status", filepath.Base(dir))
		for _, want := range []string{
			"GatewayClass  istio",
			"Accepted   True    Accepted",
			"http (3 routes)",
			"Programmed  True    Programmed",
			"HTTPRoute     default/echo",
			"ResolvedRefs  True    ResolvedRefs",
			"HTTPRoute     default/other-host",
			"ResolvedRefs  False   BackendNotFound",
			"GRPCRoute     default/grpc",
			"HTTPRoute     default/echo-mesh  Service echo:8080  Accepted  True    Accepted",
		} {
			if !strings.Contains(squeeze(out), squeeze(want)) {
				t.Errorf("bowline status lacks %q:\n%s", want, out)
			}
		}
	})
}

// squeeze collapses runs of spaces, so that column widths do not matter.
func squeeze(s string) string { return strings.Join(strings.Fields(s), " ") }

// outboundProxy returns a replica's sidecar outbound proxy (its app's HTTP_PROXY) from up.json.
func (m *meshUp) outboundProxy(t *testing.T, replica string) *url.URL {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(m.dir, ".bowline", "up.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Workloads []struct{ Name, OutboundProxy string } `json:"workloads"`
	}
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	for _, w := range st.Workloads {
		if w.Name == replica {
			u, err := url.Parse(w.OutboundProxy)
			if err != nil || u.Host == "" {
				u, err = url.Parse("http://" + w.OutboundProxy)
			}
			if err != nil {
				t.Fatal(err)
			}
			return u
		}
	}
	t.Fatalf("no replica %s in up.json", replica)
	return nil
}

// TestBookinfoGatewayAPIUp runs Bookinfo with Istio's Gateway API samples
// instead of its Gateway and VirtualServices: the product page through an
// HTTPRoute at the ingress, then reviews shifted in the mesh by GAMMA
// routes on the Service reviews, as the Gateway API tabs of Istio's
// request-routing and traffic-shifting tasks do.
func TestBookinfoGatewayAPIUp(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds binaries and runs processes")
	}
	bins := binaries(t)
	dir := bookinfoDir(t, bins)
	if err := os.Remove(filepath.Join(dir, "bookinfo-gateway.yaml")); err != nil {
		t.Fatal(err)
	}
	gatewayAPISample := func(file string) {
		t.Helper()
		copyFile(t, filepath.Join(repoRoot(t), "samples", "bookinfo", "gateway-api", file), filepath.Join(dir, file))
	}
	// Istio's Gateway API task applies bookinfo-versions.yaml (a Service per
	// reviews version) before routing to them.
	gatewayAPISample("bookinfo-versions.yaml")
	gatewayAPISample("bookinfo-gateway.yaml")
	m := startUp(t, filepath.Join(bins, "bowline"), dir)
	m.eventually(t, "", 3, "the product page through the HTTPRoute", func(p page) bool { return p.status == http.StatusOK && p.reviews != "" })
	if resp, _ := gwGet(t, m.ingress, "bookinfo.example", "/", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET / (no rule matches it): %d, want 404", resp.StatusCode)
	}

	gatewayAPISample("route-reviews-v3.yaml")
	m.eventually(t, "", 5, "every review from reviews-v3 (red stars)", func(p page) bool {
		return p.status == http.StatusOK && p.reviews == "reviews-v3" && p.stars == "red"
	})

	// The same HTTPRoute reviews redefined, as kubectl apply of the next step does.
	if err := os.Remove(filepath.Join(dir, "route-reviews-v3.yaml")); err != nil {
		t.Fatal(err)
	}
	gatewayAPISample("route-reviews-90-10.yaml")
	m.eventually(t, "", 3, "reviews-v3 no longer served", func(p page) bool { return p.status == http.StatusOK && p.reviews != "reviews-v3" })
	const n = 200
	counts := m.split(t, "", n)
	if !within(counts["reviews-v1"], n, 0.9, 0.07) || !within(counts["reviews-v2"], n, 0.1, 0.07) || counts["reviews-v3"] != 0 {
		t.Errorf("reviews over %d requests: %v, want about 90%% v1 and 10%% v2", n, counts)
	}
	out := m.bowline(t, filepath.Dir(dir), "status", filepath.Base(dir))
	for _, want := range []string{
		"HTTPRoute default/bookinfo Gateway bookinfo-gateway Accepted True Accepted",
		"HTTPRoute default/reviews Service reviews:9080 Accepted True Accepted",
		"HTTPRoute default/reviews Service reviews:9080 ResolvedRefs True ResolvedRefs",
	} {
		if !strings.Contains(squeeze(out), want) {
			t.Errorf("bowline status lacks %q:\n%s", want, out)
		}
	}
}

package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// fakeGenerator gives every proxy one cluster per service and counts VirtualServices into nothing.
type fakeGenerator struct{}

type fakeMesh struct {
	version  string
	services []*registry.Service
}

func (fakeGenerator) Build(cfg *config.Snapshot, v *registry.View) Mesh {
	var b strings.Builder
	for _, s := range v.Services() {
		fmt.Fprintf(&b, "%s/%d;", s.Hostname, len(s.Endpoints))
	}
	for _, o := range cfg.Objects {
		if _, ok := o.Spec.(*networking.VirtualService); ok {
			b.WriteString("vs;")
		}
	}
	return &fakeMesh{version: b.String(), services: v.Services()}
}

func (m *fakeMesh) Version() string    { return m.version }
func (m *fakeMesh) Problems() []string { return nil }
func (m *fakeMesh) Generate(p *model.Proxy) Resources {
	var cs []types.Resource
	for _, s := range m.services {
		cs = append(cs, &clusterv3.Cluster{Name: "outbound|80||" + s.Hostname})
	}
	return Resources{ByType: map[string][]types.Resource{resourcev3.ClusterType: cs}}
}

const seYAML = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %[1]s, namespace: default}
spec:
  hosts: [%[1]s.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1}]
`

const testNodeID = "sidecar~10.0.0.9~client.default~default.svc.cluster.local"

type testServer struct {
	srv      *Server
	dir      string
	xdsAddr  string
	debugURL string
}

func startServer(t *testing.T) *testServer {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), fmt.Sprintf(seYAML, "a"))
	srv, err := New(Config{XDSAddress: "127.0.0.1:0", DebugAddress: "127.0.0.1:0", Insecure: true, ConfigDir: dir,
		Generator: fakeGenerator{}, Debounce: 10 * time.Millisecond, ID: "discovery-test", Version: "v-test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	xa, da, ok := srv.Addresses(ctx)
	if !ok {
		t.Fatal("server did not listen")
	}
	ts := &testServer{srv: srv, dir: dir, xdsAddr: xa.String(), debugURL: "http://" + da.String()}
	waitUntil(t, "ready", func() bool { code, _ := ts.get(t, "/ready"); return code == http.StatusOK })
	return ts
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func (ts *testServer) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(ts.debugURL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (ts *testServer) do(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, ts.debugURL+path, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (ts *testServer) syncz(t *testing.T) Syncz {
	t.Helper()
	_, b := ts.get(t, "/debug/syncz")
	var sz Syncz
	if err := json.Unmarshal(b, &sz); err != nil {
		t.Fatalf("syncz: %v: %s", err, b)
	}
	return sz
}

// adsClient is a minimal state-of-the-world ADS client.
type adsClient struct {
	conn   *grpc.ClientConn
	stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	cancel context.CancelFunc
	resps  chan *discovery.DiscoveryResponse
	errs   chan error
	wg     sync.WaitGroup
}

func dialADS(t *testing.T, addr string) *adsClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &adsClient{conn: conn, stream: stream, cancel: cancel, resps: make(chan *discovery.DiscoveryResponse, 16), errs: make(chan error, 1)}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			r, err := stream.Recv()
			if err != nil {
				c.errs <- err
				return
			}
			c.resps <- r
		}
	}()
	t.Cleanup(func() { c.cancel(); c.wg.Wait(); conn.Close() })
	return c
}

func (c *adsClient) send(t *testing.T, req *discovery.DiscoveryRequest) {
	t.Helper()
	if err := c.stream.Send(req); err != nil {
		t.Fatal(err)
	}
}

func (c *adsClient) recv(t *testing.T) *discovery.DiscoveryResponse {
	t.Helper()
	select {
	case r := <-c.resps:
		return r
	case err := <-c.errs:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no response")
	}
	return nil
}

func (c *adsClient) expectNone(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case r := <-c.resps:
		t.Fatalf("unexpected response version %s", r.GetVersionInfo())
	case <-time.After(d):
	}
}

func clusterNames(t *testing.T, r *discovery.DiscoveryResponse) []string {
	t.Helper()
	var out []string
	for _, a := range r.GetResources() {
		var c clusterv3.Cluster
		if err := a.UnmarshalTo(&c); err != nil {
			t.Fatal(err)
		}
		out = append(out, c.GetName())
	}
	return out
}

func TestSotWPushACKAndNACK(t *testing.T) {
	ts := startServer(t)
	c := dialADS(t, ts.xdsAddr)
	node := &core.Node{Id: testNodeID}
	c.send(t, &discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType})
	r1 := c.recv(t)
	if got := clusterNames(t, r1); len(got) != 1 || got[0] != "outbound|80||a.example.com" {
		t.Fatalf("clusters = %v", got)
	}
	c.send(t, &discovery.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, VersionInfo: r1.VersionInfo, ResponseNonce: r1.Nonce})
	waitUntil(t, "ACK in syncz", func() bool {
		sz := ts.syncz(t)
		return len(sz.Proxies) == 1 && sz.Proxies[0].Types[TypeCDS].Acked == r1.VersionInfo
	})
	sz := ts.syncz(t)
	if sz.ControlPlane.ID != "discovery-test" || sz.Proxies[0].ID != testNodeID || sz.Proxies[0].Types[TypeCDS].Sent != r1.VersionInfo {
		t.Fatalf("syncz = %+v", sz)
	}

	// A change that does not alter this proxy's clusters is not pushed.
	writeFile(t, filepath.Join(ts.dir, "vs.yaml"), "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec: {hosts: [r]}\n")
	waitUntil(t, "config with VirtualService", func() bool { return len(ts.srv.Store().Current().Objects) == 2 })
	c.expectNone(t, 300*time.Millisecond)

	// A new service is pushed; rejecting it is recorded and not answered with the same version.
	writeFile(t, filepath.Join(ts.dir, "b.yaml"), fmt.Sprintf(seYAML, "b"))
	r2 := c.recv(t)
	if got := clusterNames(t, r2); len(got) != 2 || r2.VersionInfo == r1.VersionInfo {
		t.Fatalf("second push: version %s clusters %v", r2.VersionInfo, got)
	}
	c.send(t, &discovery.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, VersionInfo: r1.VersionInfo, ResponseNonce: r2.Nonce,
		ErrorDetail: &statuspb.Status{Code: int32(codes.InvalidArgument), Message: "cluster b: unsupported field"}})
	waitUntil(t, "NACK in syncz", func() bool {
		st := ts.syncz(t).Proxies[0].Types[TypeCDS]
		return st.NACK == "cluster b: unsupported field" && st.NACKedVersion == r2.VersionInfo && st.Acked == r1.VersionInfo
	})
	c.expectNone(t, 300*time.Millisecond)

	// Invalid YAML keeps the last good config: nothing is pushed.
	writeFile(t, filepath.Join(ts.dir, "b.yaml"), "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: b}\nspec: {hosts: [b], bogus: 1}\n")
	waitUntil(t, "problem recorded", func() bool { return len(ts.srv.Store().Current().Problems) > 0 })
	c.expectNone(t, 300*time.Millisecond)
	code, body := ts.get(t, "/debug/configz")
	if code != http.StatusOK || !strings.Contains(string(body), `"ServiceEntry": [`) || !strings.Contains(string(body), "bogus") {
		t.Fatalf("configz %d: %s", code, body)
	}

	// The next real change is pushed again.
	writeFile(t, filepath.Join(ts.dir, "c.yaml"), fmt.Sprintf(seYAML, "c"))
	r3 := c.recv(t)
	if got := clusterNames(t, r3); len(got) != 3 {
		t.Fatalf("third push clusters %v", got)
	}
	c.send(t, &discovery.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, VersionInfo: r3.VersionInfo, ResponseNonce: r3.Nonce})
	waitUntil(t, "NACK cleared", func() bool {
		st := ts.syncz(t).Proxies[0].Types[TypeCDS]
		return st.NACK == "" && st.Acked == r3.VersionInfo
	})
	_, metricsBody := ts.get(t, "/metrics")
	for _, want := range []string{`pilot_xds_pushes{type="cds"} 3`, `pilot_total_xds_rejects{type="cds"} 1`, "pilot_xds 1", "pilot_proxy_convergence_time_bucket", `bowline_config_problems{severity="Error"} 1`} {
		if !strings.Contains(string(metricsBody), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestBadNodeRejected(t *testing.T) {
	ts := startServer(t)
	c := dialADS(t, ts.xdsAddr)
	md, _ := structpb.NewStruct(map[string]any{"LABELS": "app=x"})
	c.send(t, &discovery.DiscoveryRequest{Node: &core.Node{Id: testNodeID, Metadata: md}, TypeUrl: resourcev3.ClusterType})
	select {
	case err := <-c.errs:
		if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != "invalid node metadata.LABELS: must be a struct of strings" {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stream not closed")
	}
	if n := len(ts.syncz(t).Proxies); n != 0 {
		t.Fatalf("%d proxies in syncz", n)
	}
}

func TestDeltaACK(t *testing.T) {
	ts := startServer(t)
	conn, err := grpc.NewClient(ts.xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := discovery.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&discovery.DeltaDiscoveryRequest{Node: &core.Node{Id: testNodeID}, TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatal(err)
	}
	r, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.GetResources()) != 1 || r.GetResources()[0].GetName() != "outbound|80||a.example.com" {
		t.Fatalf("delta resources %v", r.GetResources())
	}
	if err := st.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: r.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "delta ACK", func() bool {
		sz := ts.syncz(t)
		return len(sz.Proxies) == 1 && sz.Proxies[0].Delta && sz.Proxies[0].Types[TypeCDS].Acked == r.GetSystemVersionInfo()
	})
	cancel()
	waitUntil(t, "disconnect", func() bool { return len(ts.syncz(t).Proxies) == 0 })
}

func TestRegistrationAPI(t *testing.T) {
	ts := startServer(t)
	tests := []struct {
		name, method, path, body string
		wantCode                 int
		wantBody                 string
	}{
		{"register", "POST", "/v1/workloads", `{"name":"vm-1","namespace":"default","address":"10.0.0.7","ports":{"http":8080},"labels":{"app":"a"},"healthy":true}`, http.StatusCreated, `"id": "default/vm-1"`},
		{"unknown field", "POST", "/v1/workloads", `{"name":"vm-1","namespace":"default","address":"10.0.0.7","color":"red"}`, http.StatusBadRequest, `json: unknown field \"color\"`},
		{"missing fields", "POST", "/v1/workloads", `{"ports":{"http":0}}`, http.StatusBadRequest, "name: required; namespace: required; address: required; ports.http: 0 is not a port number"},
		{"unhealthy", "PUT", "/v1/workloads/default/vm-1/health", `{"healthy":false}`, http.StatusNoContent, ""},
		{"health unknown", "PUT", "/v1/workloads/default/nope/health", `{"healthy":false}`, http.StatusNotFound, "workload not registered"},
		{"deregister", "DELETE", "/v1/workloads/default/vm-1", "", http.StatusNoContent, ""},
		{"deregister again", "DELETE", "/v1/workloads/default/vm-1", "", http.StatusNotFound, "workload not registered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := ts.do(t, tt.method, tt.path, tt.body)
			if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
				t.Fatalf("%s %s = %d %s, want %d containing %q", tt.method, tt.path, code, body, tt.wantCode, tt.wantBody)
			}
			if tt.name == "register" {
				_, rz := ts.get(t, "/debug/registryz")
				if !strings.Contains(string(rz), `"Name": "vm-1"`) {
					t.Errorf("registryz lacks vm-1: %s", rz)
				}
			}
		})
	}
}

func TestNewRequiresInsecure(t *testing.T) {
	_, err := New(Config{Generator: fakeGenerator{}})
	if err == nil || !strings.Contains(err.Error(), "--insecure-xds") {
		t.Fatalf("err = %v", err)
	}
}

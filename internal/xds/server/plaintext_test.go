package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// secretGenerator gives every proxy one cluster and one secret (as a
// gateway with a credentialName gets its certificate and key).
type secretGenerator struct{}

type secretMesh struct{}

func (secretGenerator) Build(*config.Snapshot, *registry.View) Mesh { return secretMesh{} }
func (secretMesh) Version() string                                  { return "1" }
func (secretMesh) Problems() []string                               { return nil }
func (secretMesh) Generate(*model.Proxy) Resources {
	return Resources{ByType: map[string][]types.Resource{
		resourcev3.ClusterType: {&clusterv3.Cluster{Name: "outbound|80||a.example.com"}},
		resourcev3.SecretType:  {&tlsv3.Secret{Name: "kubernetes://istio-system/bookinfo-cert"}},
	}}
}

// pollDeadline bounds the polls of these tests: generous, for loaded CI machines.
const pollDeadline = 2 * time.Minute

func TestPlaintextXDSAndMonitoringPorts(t *testing.T) {
	store := config.NewStore()
	srv, err := New(Config{XDSAddress: "127.0.0.1:0", DebugAddress: "127.0.0.1:0", Insecure: true,
		PlaintextXDSAddress: "127.0.0.1:0", MonitoringAddress: "127.0.0.1:0", Store: store,
		Generator: secretGenerator{}, Debounce: time.Millisecond, ID: "discovery-test", Version: "v-test"})
	if err != nil {
		t.Fatal(err)
	}
	store.Publish(nil, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	xds, _, ok := srv.Addresses(ctx)
	plain, mon, ok2 := srv.OptionalAddresses(ctx)
	if !ok || !ok2 || plain == nil || mon == nil {
		t.Fatalf("listeners: plaintext xds %v, monitoring %v", plain, mon)
	}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + mon.String() + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(pollDeadline)
	for code, body := get("/ready"); code != http.StatusOK; code, body = get("/ready") {
		if time.Now().After(deadline) {
			t.Fatalf("monitoring /ready = %d %q after %s", code, body, pollDeadline)
		}
		time.Sleep(20 * time.Millisecond)
	}

	t.Run("PlaintextServesEverythingButSecrets", func(t *testing.T) {
		node := &core.Node{Id: "router~10.0.0.9~istio-ingressgateway-1.istio-system~istio-system.svc.cluster.local"}
		// Asked for secrets first, then clusters: the first (and only)
		// answer is the clusters.
		c := dialADS(t, plain.String())
		c.send(t, &discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.SecretType, ResourceNames: []string{"kubernetes://istio-system/bookinfo-cert"}})
		c.send(t, &discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType})
		if r := c.recv(t); r.GetTypeUrl() != resourcev3.ClusterType || len(clusterNames(t, r)) != 1 {
			t.Fatalf("first response on the plaintext port: %s with %d resources, want the clusters", r.GetTypeUrl(), len(r.GetResources()))
		}
		// The same request on the main port gets the secret: it exists,
		// and only the plaintext port holds it back.
		m := dialADS(t, xds.String())
		m.send(t, &discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.SecretType, ResourceNames: []string{"kubernetes://istio-system/bookinfo-cert"}})
		if r := m.recv(t); r.GetTypeUrl() != resourcev3.SecretType || len(r.GetResources()) != 1 {
			t.Fatalf("main port: %s with %d resources, want the secret", r.GetTypeUrl(), len(r.GetResources()))
		}
	})

	t.Run("MonitoringServesOnlyMetricsVersionReady", func(t *testing.T) {
		if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "pilot_xds") {
			t.Errorf("GET /metrics = %d, want 200 with pilot_xds metrics:\n%.500s", code, body)
		}
		if code, body := get("/version"); code != http.StatusOK || strings.TrimSpace(body) != "v-test" {
			t.Errorf("GET /version = %d %q, want 200 v-test", code, body)
		}
		for _, path := range []string{"/debug/syncz", "/debug/configz", "/debug/registryz"} {
			if code, _ := get(path); code != http.StatusNotFound {
				t.Errorf("GET %s on the monitoring port = %d, want 404 (debug stays on the debug address)", path, code)
			}
		}
		resp, err := http.Post("http://"+mon.String()+"/v1/workloads", "application/json", strings.NewReader(`{"name":"x","namespace":"default","address":"10.0.0.7"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST /v1/workloads on the monitoring port = %d, want 404 or 405 (registration stays on the debug address)", resp.StatusCode)
		}
	})
}

func TestReadyGate(t *testing.T) {
	var open bool
	s := &Server{cfg: Config{ReadyGate: func() bool { return open }}}
	s.ready.Store(true)
	rec := func() (int, string) {
		w := &recorder{header: http.Header{}}
		s.readyz(w, nil)
		return w.code, w.body.String()
	}
	if code, body := rec(); code != http.StatusServiceUnavailable || !strings.Contains(body, "has not synced") {
		t.Errorf("gate closed: /ready = %d %q, want 503 naming the unsynced source", code, body)
	}
	open = true
	if code, _ := rec(); code != 0 && code != http.StatusOK {
		t.Errorf("gate open: /ready = %d, want 200", code)
	}
}

// recorder is a minimal http.ResponseWriter.
type recorder struct {
	header http.Header
	code   int
	body   strings.Builder
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(code int)        { r.code = code }

// fakeServerStream replays requests to RecvMsg, then io.EOF.
type fakeServerStream struct {
	grpc.ServerStream
	reqs []any // DiscoveryRequests or DeltaDiscoveryRequests
}

func (f *fakeServerStream) RecvMsg(m any) error {
	if len(f.reqs) == 0 {
		return io.EOF
	}
	r := f.reqs[0]
	f.reqs = f.reqs[1:]
	dst := m.(proto.Message)
	proto.Reset(dst)
	proto.Merge(dst, r.(proto.Message))
	return nil
}

func TestSecretlessStreamDropsSDS(t *testing.T) {
	t.Run("SotW", func(t *testing.T) {
		s := secretlessStream{&fakeServerStream{reqs: []any{
			&discovery.DiscoveryRequest{TypeUrl: resourcev3.SecretType},
			&discovery.DiscoveryRequest{TypeUrl: resourcev3.ClusterType},
			&discovery.DiscoveryRequest{TypeUrl: resourcev3.SecretType},
		}}}
		var got []string
		for {
			var m discovery.DiscoveryRequest
			if err := s.RecvMsg(&m); err != nil {
				break
			}
			got = append(got, m.GetTypeUrl())
		}
		if len(got) != 1 || got[0] != resourcev3.ClusterType {
			t.Errorf("received %v, want only the CDS request", got)
		}
	})
	t.Run("Delta", func(t *testing.T) {
		s := secretlessStream{&fakeServerStream{reqs: []any{
			&discovery.DeltaDiscoveryRequest{TypeUrl: resourcev3.SecretType},
			&discovery.DeltaDiscoveryRequest{TypeUrl: resourcev3.ListenerType},
		}}}
		var got []string
		for {
			var m discovery.DeltaDiscoveryRequest
			if err := s.RecvMsg(&m); err != nil {
				break
			}
			got = append(got, m.GetTypeUrl())
		}
		if len(got) != 1 || got[0] != resourcev3.ListenerType {
			t.Errorf("received %v, want only the LDS request", got)
		}
	})
}

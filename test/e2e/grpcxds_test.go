// Package e2e holds end-to-end tests: real servers and clients on loopback.
package e2e

import (
	"context"
	"encoding/json"
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

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/xds"

	"github.com/bowline-mesh/bowline/internal/ca"
	"github.com/bowline-mesh/bowline/internal/config/validation"
	"github.com/bowline-mesh/bowline/internal/xds/server"
)

const (
	echoHost   = "echo.default.svc.cluster.local"
	echoPort   = 7070
	grpcNodeID = "sidecar~127.0.0.1~echo-client.default~default.svc.cluster.local"
)

// echoBackend answers UnaryCall with its name in SimpleResponse.hostname.
type echoBackend struct {
	testgrpc.UnimplementedTestServiceServer
	name string
}

func (b *echoBackend) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{Hostname: b.name}, nil
}

// startBackend serves the echo backend on a loopback port and returns the port.
func startBackend(t *testing.T, name string) int {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(gs, &echoBackend{name: name})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = gs.Serve(lis) }()
	t.Cleanup(func() { gs.Stop(); wg.Wait() })
	return lis.Addr().(*net.TCPAddr).Port
}

func meshYAML(v1Port, v2Port int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: default}
spec:
  hosts: [%[1]s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: %[2]d, name: grpc, protocol: GRPC}]
  endpoints:
  - {address: 127.0.0.1, ports: {grpc: %[3]d}, labels: {app: echo, version: v1}}
  - {address: 127.0.0.1, ports: {grpc: %[4]d}, labels: {app: echo, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: default}
spec:
  host: %[1]s
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`, echoHost, echoPort, v1Port, v2Port)
}

func virtualServiceYAML(v1, v2 int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: default}
spec:
  hosts: [%s]
  http:
  - route:
    - destination: {host: %[1]s, subset: v1, port: {number: %[2]d}}
      weight: %[3]d
    - destination: {host: %[1]s, subset: v2, port: {number: %[2]d}}
      weight: %[4]d
`, echoHost, echoPort, v1, v2)
}

// writeAtomic replaces a file in one rename, as editors and kubectl-like tools do.
func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// discoveryConfig is the control plane on loopback ports reading Istio YAML
// from configDir; callers add the transport (Insecure or TLS).
func discoveryConfig(configDir string) server.Config {
	return server.Config{XDSAddress: "127.0.0.1:0", DebugAddress: "127.0.0.1:0", ConfigDir: configDir,
		Validate: validation.Objects, Generator: server.NewMeshGenerator("", "", nil), ID: "discovery-e2e", Version: "e2e"}
}

// secureDiscoveryConfig is discoveryConfig served as `bowline discovery
// --ca-dir` does: xDS over mTLS with c's CA service on the same port,
// authenticating workloads by tokens.
func secureDiscoveryConfig(configDir string, c *ca.CA, tokens *ca.Tokens) server.Config {
	cfg := discoveryConfig(configDir)
	cfg.TLS = server.MeshTLS(c.NewServingCertificate([]string{ca.DefaultServingHost, "127.0.0.1"}).GetCertificate, c.TrustBundle)
	cfg.Register = func(r grpc.ServiceRegistrar) error {
		return ca.RegisterService(r, ca.ServiceConfig{CA: c, Authenticator: tokens})
	}
	return cfg
}

// runDiscovery builds and runs the control plane, and alongside it any
// component that must stop with it, until the test ends; it returns the
// addresses discovery listens on.
func runDiscovery(t *testing.T, cfg server.Config, alongside ...func(context.Context) error) (xdsAddr, debugAddr string) {
	t.Helper()
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runs := append([]func(context.Context) error{srv.Run}, alongside...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, len(runs))
	for _, run := range runs {
		go func() { done <- run(ctx) }()
	}
	t.Cleanup(func() {
		cancel()
		for range runs {
			if err := <-done; err != nil {
				t.Errorf("discovery: %v", err)
			}
		}
	})
	xa, da, ok := srv.Addresses(ctx)
	if !ok {
		t.Fatal("discovery did not listen")
	}
	return xa.String(), da.String()
}

// startDiscovery runs the control plane in-process on loopback ports,
// without TLS.
func startDiscovery(t *testing.T, dir string) (xdsAddr, debugAddr string) {
	t.Helper()
	cfg := discoveryConfig(dir)
	cfg.Insecure = true
	return runDiscovery(t, cfg)
}

func getSyncz(t *testing.T, debugAddr string) server.Syncz {
	t.Helper()
	resp, err := http.Get("http://" + debugAddr + "/debug/syncz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sz server.Syncz
	if err := json.Unmarshal(b, &sz); err != nil {
		t.Fatalf("syncz: %v: %s", err, b)
	}
	return sz
}

// nacks lists every NACK /debug/syncz reports, for failure messages.
func nacks(t *testing.T, debugAddr string) string {
	t.Helper()
	var out []string
	for _, p := range getSyncz(t, debugAddr).Proxies {
		for typ, ts := range p.Types {
			if ts.NACK != "" {
				out = append(out, fmt.Sprintf("%s %s version %s: %s", p.ID, typ, ts.NACKedVersion, ts.NACK))
			}
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, "\n")
}

// TestProxylessGRPCWeightedRouting drives grpc-go's own xDS client against
// `bowline discovery`: weighted subsets from a VirtualService, a live change
// of the weights, and ACKs in /debug/syncz.
func TestProxylessGRPCWeightedRouting(t *testing.T) {
	v1Port, v2Port := startBackend(t, "v1"), startBackend(t, "v2")
	dir := t.TempDir()
	writeAtomic(t, filepath.Join(dir, "echo.yaml"), meshYAML(v1Port, v2Port))
	vsFile := filepath.Join(dir, "echo-vs.yaml")
	writeAtomic(t, vsFile, virtualServiceYAML(80, 20))
	xdsAddr, debugAddr := startDiscovery(t, dir)

	bootstrap := fmt.Sprintf(`{
  "xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
  "node": {"id": %q, "metadata": {"GENERATOR": "grpc", "NAMESPACE": "default"}}
}`, xdsAddr, grpcNodeID)
	resolver, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	target := fmt.Sprintf("xds:///%s:%d", echoHost, echoPort)
	cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(resolver))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := testgrpc.NewTestServiceClient(cc)
	call := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.WaitForReady(true))
		if err != nil {
			t.Fatalf("UnaryCall %s: %v\nNACKs in /debug/syncz: %s", target, err, nacks(t, debugAddr))
		}
		return resp.GetHostname()
	}

	const n = 1000
	counts := map[string]int{}
	for range n {
		counts[call()]++
	}
	share := float64(counts["v1"]) / n
	t.Logf("80/20 split over %d RPCs: v1=%d v2=%d (v1 share %.3f)", n, counts["v1"], counts["v2"], share)
	if counts["v1"]+counts["v2"] != n || share < 0.75 || share > 0.85 {
		t.Fatalf("split v1=%d v2=%d, want 80/20 within 5%%", counts["v1"], counts["v2"])
	}

	// Send everything to v2 and wait for it to take effect.
	changed := time.Now()
	writeAtomic(t, vsFile, virtualServiceYAML(0, 100))
	var took time.Duration
	for streak := 0; streak < 50; {
		if call() == "v2" {
			streak++
		} else {
			streak = 0
		}
		if took = time.Since(changed); took > 5*time.Second {
			t.Fatalf("100%% to v2 not in effect after %s", took)
		}
	}
	t.Logf("switch to 100%% v2 in effect after %s", took)
	if took > time.Second {
		t.Errorf("switch took %s, want under 1s", took)
	}

	sz := getSyncz(t, debugAddr)
	var found bool
	for _, p := range sz.Proxies {
		if p.ID != grpcNodeID {
			continue
		}
		found = true
		for _, typ := range []string{server.TypeLDS, server.TypeRDS, server.TypeCDS, server.TypeEDS} {
			ts, ok := p.Types[typ]
			if !ok || ts.Sent == "" || ts.Acked != ts.Sent || ts.NACK != "" {
				t.Errorf("%s: %+v, want sent == acked and no NACK", typ, ts)
			}
		}
		if p.Generator != "grpc" {
			t.Errorf("generator = %q", p.Generator)
		}
	}
	if !found {
		var ids []string
		for _, p := range sz.Proxies {
			ids = append(ids, p.ID)
		}
		t.Fatalf("proxy %s not in syncz (have %s)", grpcNodeID, strings.Join(ids, ", "))
	}
}

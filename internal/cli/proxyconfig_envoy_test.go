package cli

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/internal/local"
	"github.com/bowline-mesh/bowline/internal/xds/server"
)

// fakeProxyAdmin serves a config dump and /clusters text recorded from a
// real proxy of `bowline up` (testdata/proxyconfig/NAME.json, .clusters).
func fakeProxyAdmin(t *testing.T, name string) string {
	t.Helper()
	dump, err := os.ReadFile(filepath.Join("testdata", "proxyconfig", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	clusters, err := os.ReadFile(filepath.Join("testdata", "proxyconfig", name+".clusters"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	level := "info"
	mux := http.NewServeMux()
	mux.HandleFunc("/config_dump", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(dump) })
	mux.HandleFunc("/clusters", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(clusters) })
	mux.HandleFunc("/logging", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if l := r.URL.Query().Get("level"); l != "" && r.Method == http.MethodPost {
			level = l
		}
		_, _ = w.Write([]byte("active level: " + level + "\n"))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: time.Second}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); wg.Wait() })
	return ln.Addr().String()
}

// fakeUp makes dir look like a running `bowline up`: its lock held and its
// up.json naming the given proxies' admin addresses and control plane.
func fakeUp(t *testing.T, debug string, workloads map[string]string, ingressAdmin string) string {
	t.Helper()
	dir := t.TempDir()
	stateDir := filepath.Join(dir, ".bowline")
	release, err := local.Lock(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	st := &local.State{PID: os.Getpid(), ConfigDir: dir, ControlPlane: local.ControlPlaneState{XDS: "127.0.0.1:1", Debug: debug}, IngressAdmin: ingressAdmin}
	for name, admin := range workloads {
		workload := name[:strings.LastIndexByte(name, '-')]
		st.Workloads = append(st.Workloads, local.ReplicaState{Name: name, Namespace: "default", Workload: workload, Admin: admin})
	}
	if err := local.WriteState(stateDir, st); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestProxyConfigDump(t *testing.T) {
	pp, gw := fakeProxyAdmin(t, "productpage"), fakeProxyAdmin(t, "ingressgateway")
	dir := fakeUp(t, "127.0.0.1:1", map[string]string{"productpage-v1-0": pp}, gw)
	for _, tc := range []struct {
		golden string
		args   []string
		code   int
	}{
		{"proxyconfig_cluster", []string{"cluster", "productpage-v1"}, 0},
		{"proxyconfig_cluster_fqdn_yaml", []string{"clusters", "productpage-v1-0.default", "--fqdn", "reviews", "--subset", "v2", "-o", "yaml"}, 0},
		{"proxyconfig_listener", []string{"listener", "pod/productpage-v1-0.default"}, 0},
		{"proxyconfig_listener_gateway_json", []string{"listener", "istio-ingressgateway.istio-system", "-o", "json"}, 0},
		{"proxyconfig_route", []string{"route", "istio-ingressgateway"}, 0},
		{"proxyconfig_endpoint", []string{"endpoint", "deployment/productpage-v1", "--cluster", "outbound|9080|v1|reviews.default.svc.cluster.local"}, 0},
		{"proxyconfig_bootstrap", []string{"bootstrap", "productpage-v1"}, 0},
		{"proxyconfig_all", []string{"all", "istio-ingressgateway"}, 0},
		{"proxyconfig_log", []string{"log", "productpage-v1", "--level", "debug"}, 0},
		{"proxyconfig_unknown_proxy", []string{"cluster", "reviews"}, 1},
		{"proxyconfig_bad_output", []string{"cluster", "productpage-v1", "-o", "table"}, 2},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			out, errOut, code := run(t, "", append(append([]string{"proxy-config"}, tc.args...), "--dir", dir)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tc.code, errOut)
			}
			golden(t, tc.golden, strings.ReplaceAll(out+errOut, dir, "DIR"))
		})
	}
	t.Run("direct admin address", func(t *testing.T) {
		out, errOut, code := run(t, "", "proxy-config", "cluster", "--admin", pp)
		want, _, _ := run(t, "", "proxy-config", "cluster", "productpage-v1", "--dir", dir)
		if code != 0 || out != want {
			t.Errorf("--admin: exit %d, stderr %q, output differs from naming the proxy:\n%s", code, errOut, out)
		}
	})
}

func TestProxyStatusFindsUp(t *testing.T) {
	sz := server.Syncz{ControlPlane: server.ControlPlane{ID: "discovery-host1", Version: "v0.1.0"},
		Proxies: []server.ProxyStatus{{ID: "sidecar~127.0.0.1~reviews-v1-0.default~default.svc.cluster.local", Type: "sidecar", Namespace: "default",
			Types: map[string]server.TypeStatus{"CDS": {Sent: "c1", Acked: "c1"}, "LDS": {Sent: "l1", Acked: "l1"}, "EDS": {Sent: "e1", Acked: "e1"}, "RDS": {Sent: "r1", Acked: "r1"}}}}}
	dir := fakeUp(t, syncServer(t, sz), nil, "")
	out, errOut, code := run(t, "", "proxy-status", "--dir", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	golden(t, "proxystatus_up", out)

	// Found without flags: from the run's directory, or as the only run registered.
	if st, err := (&upLocator{cwd: dir, runtimeDir: t.TempDir()}).find(); err != nil || st.ConfigDir != dir {
		t.Errorf("find from the run's directory: %+v, %v", st, err)
	}
	runtime := t.TempDir()
	if err := os.Mkdir(filepath.Join(runtime, "up"), 0o700); err != nil {
		t.Fatal(err)
	}
	register := func(name, stateDir string) {
		if err := os.WriteFile(filepath.Join(runtime, "up", name), []byte(stateDir+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	register("1", filepath.Join(dir, ".bowline"))
	if st, err := (&upLocator{cwd: t.TempDir(), runtimeDir: runtime}).find(); err != nil || st.ConfigDir != dir {
		t.Errorf("find the only registered run: %+v, %v", st, err)
	}
	other := fakeUp(t, "127.0.0.1:1", nil, "")
	register("2", filepath.Join(other, ".bowline"))
	_, err := (&upLocator{cwd: t.TempDir(), runtimeDir: runtime}).find()
	if err == nil || !strings.Contains(err.Error(), "2 bowline up runs on this machine: ") || !strings.HasSuffix(err.Error(), "; choose one with --dir") {
		t.Errorf("find with two runs: %v, want an error listing both", err)
	}
	if _, err := (&upLocator{cwd: t.TempDir(), runtimeDir: t.TempDir()}).find(); err != errNoUp {
		t.Errorf("find with no run: %v, want errNoUp", err)
	}
	if _, err := (&upLocator{dir: t.TempDir()}).find(); err == nil || !strings.Contains(err.Error(), "no bowline up is running with state directory") {
		t.Errorf("find --dir of a stopped run: %v", err)
	}
}

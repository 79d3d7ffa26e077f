package e2e

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/internal/ca"
	"github.com/bowline-mesh/bowline/internal/proxy"
	"github.com/bowline-mesh/bowline/internal/proxy/xdsclient"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// This file drives principal-based authorization through two sidecars with
// mTLS: client -> client sidecar (explicit outbound proxy) -> mTLS -> server
// sidecar (prod/echo) -> backend. Discovery runs in-process with its CA on
// the xDS port (as `bowline discovery --ca-dir` does) and a DirWatcher on the
// CA directory; every sidecar gets its own namespace/service account token.

// meshHost is the service every client calls.
const (
	meshHost = "echo.prod.svc.cluster.local"
	meshPort = 8080
)

// xfccBackend answers "echo METHOD URI", or on /xfcc the
// x-forwarded-client-cert it received; it remembers every XFCC Hash (one per
// client leaf certificate that opened a connection to the server sidecar).
type xfccBackend struct {
	port   int
	mu     sync.Mutex
	hashes map[string]bool
}

func startXFCCBackend(t *testing.T) *xfccBackend {
	t.Helper()
	b := &xfccBackend{hashes: map[string]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		xfcc := r.Header.Get("x-forwarded-client-cert")
		for _, kv := range strings.Split(xfcc, ";") {
			if h, ok := strings.CutPrefix(kv, "Hash="); ok {
				b.mu.Lock()
				b.hashes[h] = true
				b.mu.Unlock()
			}
		}
		w.Header().Set("content-type", "text/plain")
		if r.URL.Path == "/slow" { // overlapping requests open new connections between the sidecars
			time.Sleep(50 * time.Millisecond)
		}
		if r.URL.Path == "/xfcc" {
			io.WriteString(w, xfcc)
			return
		}
		fmt.Fprintf(w, "echo %s %s", r.Method, r.URL.RequestURI())
	})}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); wg.Wait() })
	b.port = ln.Addr().(*net.TCPAddr).Port
	return b
}

// clientHashes is how many distinct client leaf certificates opened
// connections to the server sidecar.
func (b *xfccBackend) clientHashes() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.hashes)
}

// mesh is an in-process control plane (xDS + CA on one mTLS port, CA
// directory watched) with a registry the test registers workloads in.
type mesh struct {
	xds       string
	caDir     string
	root      string
	ca        *ca.CA
	tokens    *ca.Tokens
	reg       *registry.Registry
	configDir string
	tokenDir  string
	// reloaded receives (coalesced) after the CA reloaded its directory.
	reloaded <-chan struct{}
}

func startMesh(t *testing.T) *mesh {
	t.Helper()
	m := &mesh{caDir: t.TempDir(), configDir: t.TempDir(), tokenDir: t.TempDir(), tokens: ca.NewTokens(), reg: registry.New(nil)}
	m.root = filepath.Join(m.caDir, ca.RootCertFile)
	c, err := ca.New(ca.Config{Dir: m.caDir})
	if err != nil {
		t.Fatal(err)
	}
	m.ca = c
	watch, err := ca.NewDirWatcher(c, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	m.reloaded = watch.Reloaded()
	cfg := secureDiscoveryConfig(m.configDir, c, m.tokens)
	cfg.Registry = m.reg
	m.xds, _ = runDiscovery(t, cfg, watch.Run)
	writeAtomic(t, filepath.Join(m.configDir, "echo-service.yaml"), fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: prod}
spec:
  hosts: [%s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: %d, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: echo}}
`, meshHost, meshPort))
	return m
}

// meshSidecar is one in-process sidecar with its identity.
type meshSidecar struct {
	*sidecar
	id       string // SPIFFE ID
	outbound string // HOST:PORT of the explicit outbound HTTP proxy (clients)
}

// sidecarOptions describe a sidecar: its identity, inbound ports (servers),
// whether it runs an outbound proxy (clients), and its certificate TTL.
type sidecarOptions struct {
	namespace, sa, workload string
	inbound                 map[uint32]uint32
	outbound                bool
	certTTL                 time.Duration
}

func (m *mesh) startSidecar(t *testing.T, o sidecarOptions) *meshSidecar {
	t.Helper()
	tokenFile := filepath.Join(m.tokenDir, o.namespace+"."+o.sa+".token")
	if err := os.WriteFile(tokenFile, []byte(m.tokens.Mint(o.namespace, o.sa)), 0o600); err != nil {
		t.Fatal(err)
	}
	ms := &meshSidecar{sidecar: &sidecar{log: &syncWriter{}}, id: fmt.Sprintf("spiffe://cluster.local/ns/%s/sa/%s", o.namespace, o.sa)}
	if o.outbound {
		ms.outbound = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	}
	cfg := sidecarConfig(m.xds, m.root, tokenFile, xdsclient.NodeInfo{Type: "sidecar", Namespace: o.namespace, Workload: o.workload, ServiceAccount: o.sa,
		Labels: map[string]string{"app": o.workload}, IPs: []string{"127.0.0.1"}, Inbound: o.inbound, OutboundHTTP: ms.outbound}, ms.log)
	cfg.CertTTL = o.certTTL
	ms.p = proxy.New(cfg)
	ms.run(t, o.workload, 30*time.Second)
	return ms
}

// startEchoServer registers prod/echo and runs its sidecar in front of backend.
func (m *mesh) startEchoServer(t *testing.T, backend *xfccBackend, certTTL time.Duration) (*meshSidecar, int) {
	t.Helper()
	inPort := freePort(t)
	sc := m.startSidecar(t, sidecarOptions{namespace: "prod", sa: "echo", workload: "echo",
		inbound: map[uint32]uint32{uint32(inPort): uint32(backend.port)}, certTTL: certTTL})
	if err := m.reg.Register(registry.Workload{Name: "echo", Namespace: "prod", Address: "127.0.0.1",
		Ports: map[string]uint32{"http": uint32(inPort)}, Labels: map[string]string{"app": "echo"}, ServiceAccount: "echo", Healthy: true}); err != nil {
		t.Fatal(err)
	}
	return sc, inPort
}

// client is an HTTP client sending through a sidecar's outbound proxy, or
// straight to the server sidecar's port when plaintext (no sidecar).
type client struct {
	name  string
	hc    *http.Client
	plain string // HOST:PORT of the server sidecar for the plaintext client
}

func newClient(name string, sc *meshSidecar) *client {
	pu, _ := url.Parse("http://" + sc.outbound)
	return &client{name: name, hc: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu), MaxIdleConnsPerHost: 64}}}
}

func newPlainClient(inPort int) *client {
	return &client{name: "plaintext", plain: fmt.Sprintf("127.0.0.1:%d", inPort),
		hc: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Proxy: nil}}}
}

func (c *client) close() { c.hc.CloseIdleConnections() }

// get sends GET path to the echo service with extra headers and returns
// status and body.
func (c *client) get(path string, hdr map[string]string) (int, string, error) {
	target := fmt.Sprintf("http://%s:%d%s", meshHost, meshPort, path)
	if c.plain != "" {
		target = "http://" + c.plain + path
	}
	rq, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		return 0, "", err
	}
	if c.plain != "" {
		rq.Host = meshHost
	}
	for k, v := range hdr {
		rq.Header.Set(k, v)
	}
	resp, err := c.hc.Do(rq)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// expect is what one client must see for one path.
type expect struct {
	who    *client
	path   string
	status int // 0: the connection is refused (no HTTP response)
}

func ok(c *client, path string) expect        { return expect{c, path, 200} }
func forbidden(c *client, path string) expect { return expect{c, path, 403} }

// authzPolicy is an AuthorizationPolicy on prod/echo; NAME becomes the case's name.
func authzPolicy(action, rules string) string {
	return fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: NAME, namespace: prod}
spec:
  selector: {matchLabels: {app: echo}}
  action: %s
  rules:
%s`, action, rules)
}

// TestMTLSAuthorizationBetweenSidecars: AuthorizationPolicy on principals,
// namespaces, service accounts and source.* conditions, with real mTLS
// identities from three service accounts in two namespaces and a plaintext
// client, through two sidecars each.
func TestMTLSAuthorizationBetweenSidecars(t *testing.T) {
	backend := startXFCCBackend(t)
	m := startMesh(t)
	server, inPort := m.startEchoServer(t, backend, 0)
	frontendSC := m.startSidecar(t, sidecarOptions{namespace: "prod", sa: "frontend", workload: "frontend", outbound: true})
	batchSC := m.startSidecar(t, sidecarOptions{namespace: "prod", sa: "batch", workload: "batch", outbound: true})
	testerSC := m.startSidecar(t, sidecarOptions{namespace: "test", sa: "tester", workload: "tester", outbound: true})
	frontend, batch, tester := newClient("prod/frontend", frontendSC), newClient("prod/batch", batchSC), newClient("test/tester", testerSC)
	plain := newPlainClient(inPort)
	for _, c := range []*client{frontend, batch, tester, plain} {
		defer c.close()
	}
	// Clients' outbound config carries the echo endpoint with auto mTLS.
	for _, sc := range []*meshSidecar{frontendSC, batchSC, testerSC} {
		sc.waitConfig(t, "outbound|8080||"+meshHost)
	}
	waitAnswer(t, frontend, "/ready-check")

	policyFile := filepath.Join(m.configDir, "policy.yaml")
	cases := []struct {
		name   string
		policy string // "" removes the policy
		want   []expect
	}{
		{"no policy: every client allowed", "", []expect{ok(frontend, "/a"), ok(batch, "/a"), ok(tester, "/a"), ok(plain, "/a")}},
		{"principals exact: one service account only", authzPolicy("ALLOW", `  - from: [{source: {principals: ["cluster.local/ns/prod/sa/frontend"]}}]`),
			[]expect{ok(frontend, "/a"), forbidden(batch, "/a"), forbidden(tester, "/a"), forbidden(plain, "/a")}},
		{"principals prefix", authzPolicy("ALLOW", `  - from: [{source: {principals: ["cluster.local/ns/prod/*"]}}]`),
			[]expect{ok(frontend, "/a"), ok(batch, "/a"), forbidden(tester, "/a"), forbidden(plain, "/a")}},
		{"principals suffix", authzPolicy("ALLOW", `  - from: [{source: {principals: ["*/sa/tester"]}}]`),
			[]expect{forbidden(frontend, "/a"), forbidden(batch, "/a"), ok(tester, "/a"), forbidden(plain, "/a")}},
		{"principals * needs an mTLS peer: PERMISSIVE plaintext does not match", authzPolicy("ALLOW", `  - from: [{source: {principals: ["*"]}}]`),
			[]expect{ok(frontend, "/a"), ok(batch, "/a"), ok(tester, "/a"), forbidden(plain, "/a")}},
		// ISTIO-SECURITY-2021-004: mTLS-only fields compare an empty value on
		// plaintext, so a not* field matches a plaintext request.
		{"notPrincipals", authzPolicy("ALLOW", `  - from: [{source: {notPrincipals: ["cluster.local/ns/prod/sa/batch"]}}]`),
			[]expect{ok(frontend, "/a"), forbidden(batch, "/a"), ok(tester, "/a"), ok(plain, "/a")}},
		{"namespaces", authzPolicy("ALLOW", `  - from: [{source: {namespaces: ["test"]}}]`),
			[]expect{forbidden(frontend, "/a"), forbidden(batch, "/a"), ok(tester, "/a"), forbidden(plain, "/a")}},
		{"notNamespaces", authzPolicy("ALLOW", `  - from: [{source: {notNamespaces: ["test"]}}]`),
			[]expect{ok(frontend, "/a"), ok(batch, "/a"), forbidden(tester, "/a"), ok(plain, "/a")}},
		{"when source.principal", authzPolicy("ALLOW", `  - when: [{key: source.principal, values: ["cluster.local/ns/prod/sa/batch"]}]`),
			[]expect{forbidden(frontend, "/a"), ok(batch, "/a"), forbidden(tester, "/a"), forbidden(plain, "/a")}},
		{"when source.namespace", authzPolicy("ALLOW", `  - when: [{key: source.namespace, values: ["prod"]}]`),
			[]expect{ok(frontend, "/a"), ok(batch, "/a"), forbidden(tester, "/a"), forbidden(plain, "/a")}},
		{"when notValues source.principal", authzPolicy("ALLOW", `  - when: [{key: source.principal, notValues: ["cluster.local/ns/prod/sa/frontend"]}]`),
			[]expect{forbidden(frontend, "/a"), ok(batch, "/a"), ok(tester, "/a")}},
		{"serviceAccounts: bare name in the policy's namespace and ns/sa", authzPolicy("ALLOW", `  - from: [{source: {serviceAccounts: ["frontend", "test/tester"]}}]`),
			[]expect{ok(frontend, "/a"), forbidden(batch, "/a"), ok(tester, "/a"), forbidden(plain, "/a")}},
		{"DENY by namespace", authzPolicy("DENY", `  - from: [{source: {namespaces: ["test"]}}]`),
			[]expect{ok(frontend, "/a"), ok(batch, "/a"), forbidden(tester, "/a"), ok(plain, "/a")}},
		{"ALLOW one service account on one path", authzPolicy("ALLOW", `  - from: [{source: {principals: ["cluster.local/ns/prod/sa/frontend"]}}]
    to: [{operation: {paths: ["/api/*"]}}]`),
			[]expect{ok(frontend, "/api/x"), forbidden(frontend, "/admin"), forbidden(batch, "/api/x"), forbidden(tester, "/api/x")}},
		{"DENY principal beats ALLOW namespace", authzPolicy("ALLOW", `  - from: [{source: {namespaces: ["prod"]}}]`) + "\n---\n" +
			strings.Replace(authzPolicy("DENY", `  - from: [{source: {principals: ["cluster.local/ns/prod/sa/batch"]}}]`), "NAME", "NAME-deny", 1),
			[]expect{ok(frontend, "/a"), forbidden(batch, "/a"), forbidden(tester, "/a")}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("case-%d", i)
			if tc.policy == "" {
				if err := os.Remove(policyFile); err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
				server.waitNoConfig(t, "policy[case-")
			} else {
				writeAtomic(t, policyFile, strings.ReplaceAll(tc.policy, "NAME", name))
				server.waitConfig(t, "policy["+name+"]")
			}
			for _, e := range tc.want {
				status, body, err := e.who.get(e.path, nil)
				want := "echo GET " + e.path
				if e.status == 403 {
					want = "RBAC: access denied"
				}
				if err != nil || status != e.status || body != want {
					t.Errorf("%s GET %s: %d %q (%v), want %d %q", e.who.name, e.path, status, body, err, e.status, want)
				}
			}
		})
	}
	if err := os.Remove(policyFile); err != nil {
		t.Fatal(err)
	}
	server.waitNoConfig(t, "policy[case-")

	t.Run("x-forwarded-client-cert names the client's SPIFFE ID", func(t *testing.T) {
		for _, c := range []struct {
			who *client
			id  string
		}{{frontend, frontendSC.id}, {tester, testerSC.id}} {
			status, body, err := c.who.get("/xfcc", map[string]string{"x-forwarded-client-cert": "By=spiffe://evil;URI=spiffe://cluster.local/ns/prod/sa/admin"})
			if err != nil || status != 200 {
				t.Fatalf("%s: %d %v", c.who.name, status, err)
			}
			if !strings.HasPrefix(body, "By="+server.id+";Hash=") || !strings.HasSuffix(body, `;Subject="";URI=`+c.id) || strings.Contains(body, "evil") {
				t.Errorf("%s: backend saw XFCC %q, want By=%s;Hash=...;Subject=\"\";URI=%s", c.who.name, body, server.id, c.id)
			}
		}
		status, body, err := plain.get("/xfcc", map[string]string{"x-forwarded-client-cert": "URI=spiffe://cluster.local/ns/prod/sa/frontend"})
		if err != nil || status != 200 || body != "" {
			t.Errorf("plaintext with a forged XFCC: %d %q (%v), want 200 and no XFCC at the backend", status, body, err)
		}
	})

	t.Run("STRICT refuses the plaintext client outright", func(t *testing.T) {
		dump := server.configDump(t)
		writeAtomic(t, filepath.Join(m.configDir, "peerauthn.yaml"), `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: echo-strict, namespace: prod}
spec:
  selector: {matchLabels: {app: echo}}
  mtls: {mode: STRICT}
`)
		waitDumpChange(t, server.sidecar, dump)
		deadline := time.Now().Add(15 * time.Second)
		for {
			_, _, err := plain.get("/a", nil)
			plain.close()
			if err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("plaintext still answered 15s after STRICT")
			}
			time.Sleep(50 * time.Millisecond)
		}
		for range 3 {
			status, body, err := plain.get("/a", nil)
			if err == nil {
				t.Errorf("plaintext under STRICT: got %d %q, want the connection closed", status, body)
			}
			plain.close()
		}
		for _, c := range []*client{frontend, batch, tester} {
			if status, body, err := c.get("/a", nil); err != nil || status != 200 || body != "echo GET /a" {
				t.Errorf("%s under STRICT: %d %q (%v), want 200", c.name, status, body, err)
			}
		}
		// STRICT and an ALLOW on a principal together: the other identity gets 403.
		writeAtomic(t, policyFile, strings.ReplaceAll(authzPolicy("ALLOW", `  - from: [{source: {principals: ["cluster.local/ns/test/sa/tester"]}}]`), "NAME", "strict-allow"))
		server.waitConfig(t, "policy[strict-allow]")
		if status, body, err := tester.get("/a", nil); err != nil || status != 200 || body != "echo GET /a" {
			t.Errorf("tester: %d %q (%v), want 200", status, body, err)
		}
		if status, body, err := frontend.get("/a", nil); err != nil || status != 403 || body != "RBAC: access denied" {
			t.Errorf("frontend: %d %q (%v), want 403 RBAC: access denied", status, body, err)
		}
	})
}

// waitAnswer waits until c gets a 200 for path (endpoints and clusters warm).
func waitAnswer(t *testing.T, c *client, path string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, body, err := c.get(path, nil)
		if err == nil && status == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no 200 for %s within 30s: %d %q %v", c.name, path, status, body, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitDumpChange waits until the sidecar's config differs from before.
func waitDumpChange(t *testing.T, sc *sidecar, before string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for sc.configDump(t) == before {
		if time.Now().After(deadline) {
			t.Fatal("config unchanged after 15s")
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// certsOf reads a sidecar's admin /certs: the workload certificate's serial
// and the roots' serials.
func certsOf(t *testing.T, sc *sidecar) (serial string, roots []string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}).Get("http://" + sc.p.AdminAddr() + "/certs")
	if err != nil {
		t.Errorf("admin /certs: %v", err)
		return "", nil
	}
	defer resp.Body.Close()
	var out proxy.Certs
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Errorf("admin /certs: %v", err)
		return "", nil
	}
	for _, c := range out.Certificates {
		switch c.Name {
		case "default":
			serial = c.Serial
		case "ROOTCA":
			roots = append(roots, c.Serial)
		}
	}
	return serial, roots
}

// serialHex is a certificate's serial as /certs prints it.
func serialHex(c *x509.Certificate) string { return fmt.Sprintf("%x", c.SerialNumber) }

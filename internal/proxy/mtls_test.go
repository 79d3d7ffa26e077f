package proxy_test

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bowline-mesh/bowline/internal/ca"
	"github.com/bowline-mesh/bowline/internal/identity"
	"github.com/bowline-mesh/bowline/internal/proxy"
	"github.com/bowline-mesh/bowline/internal/proxy/xdsclient"
)

const (
	clientNode = "sidecar~127.0.0.1~client.default~default.svc.cluster.local"
	serverNode = "sidecar~127.0.0.1~server.default~default.svc.cluster.local"
	clientID   = "spiffe://cluster.local/ns/default/sa/client"
	serverID   = "spiffe://cluster.local/ns/default/sa/server"
)

var _ proxy.CertSource = (*identity.Agent)(nil)

// meshCA is a real CA served on loopback.
type meshCA struct {
	addr   string
	root   []byte
	tokens *ca.Tokens
}

func startMeshCA(t *testing.T) *meshCA {
	t.Helper()
	c, err := ca.New(ca.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tokens := ca.NewTokens()
	srv, err := ca.NewServer(ca.ServerConfig{Address: "127.0.0.1:0", CA: c, Authenticator: tokens})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case <-srv.Listening():
	case err := <-done:
		cancel()
		t.Fatalf("ca run: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return &meshCA{addr: srv.Addr().String(), root: ca.EncodeCertificates(c.TrustBundle()...), tokens: tokens}
}

// agent runs a workload identity agent for default/<sa> until the test ends.
func (m *meshCA) agent(t *testing.T, sa string, ttl time.Duration) *identity.Agent {
	t.Helper()
	a, err := identity.New(identity.Config{CAAddress: m.addr, RootCert: m.root, Token: m.tokens.Mint("default", sa), TTL: ttl,
		RetryInitial: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-a.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("agent got no certificate")
	}
	return a
}

// startMeshProxy runs a proxy with node id and identity (nil for none).
func startMeshProxy(t *testing.T, cpAddr, id, workload string, ident proxy.CertSource) *runningProxy {
	t.Helper()
	return startProxyAs(t, cpAddr, false, id, "json", func(c *proxy.Config) {
		c.Node = xdsclient.NodeInfo{ID: id, Namespace: "default", Workload: workload, ServiceAccount: workload,
			Labels: map[string]string{"app": workload, "version": "v1"}, IPs: []string{"127.0.0.1"}}
		c.Identity = ident
	})
}

func sds(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: ads()}
}

func tlsSocket(t *testing.T, ctx types.Resource) *corev3.TransportSocket {
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: anyOf(t, ctx)}}
}

// downstreamMTLS is the generator's inbound mTLS context.
func downstreamMTLS(t *testing.T) *corev3.TransportSocket {
	return tlsSocket(t, &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspbTrue(),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsParams:                      &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3},
			AlpnProtocols:                  []string{"istio-peer-exchange", "istio", "h2", "http/1.1"},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds("default")},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext:         &tlsv3.CertificateValidationContext{},
					ValidationContextSdsSecretConfig: sds("ROOTCA")}},
		}})
}

// istioMutual is the generator's ISTIO_MUTUAL upstream context.
func istioMutual(t *testing.T, sans ...string) *corev3.TransportSocket {
	var ms []*tlsv3.SubjectAltNameMatcher
	for _, s := range sans {
		ms = append(ms, &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}})
	}
	return tlsSocket(t, &tlsv3.UpstreamTlsContext{Sni: "outbound_.80_._.server.default.svc.cluster.local",
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsParams:                      &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3},
			AlpnProtocols:                  []string{"istio-peer-exchange", "istio"},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds("default")},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: ms},
					ValidationContextSdsSecretConfig: sds("ROOTCA")}},
		}})
}

// inboundListener is the server sidecar's inbound listener in mode
// (STRICT, PERMISSIVE or DISABLE), routing to cluster "inbound|app".
func inboundMTLSListener(t *testing.T, port int, mode string) *listenerv3.Listener {
	l := listenerOf(t, "inbound|"+itoa(port), "127.0.0.1", port, true, hcmFilter(t, "inbound"))
	fs := l.FilterChains[0].Filters
	switch mode {
	case "STRICT":
		l.FilterChains[0].TransportSocket = downstreamMTLS(t)
	case "PERMISSIVE":
		l.FilterChains = []*listenerv3.FilterChain{
			{FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "tls",
				ApplicationProtocols: []string{"istio", "istio-peer-exchange", "istio-http/1.0", "istio-http/1.1", "istio-h2"}},
				Filters: fs, TransportSocket: downstreamMTLS(t)},
			{FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "raw_buffer"}, Filters: fs},
		}
		l.ListenerFilters = []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.tls_inspector",
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: anyOf(t, &tlsinspectorv3.TlsInspector{})}}}
	}
	return l
}

// autoMTLS sets Istio's auto mTLS transport_socket_matches on c.
func autoMTLS(t *testing.T, c *clusterv3.Cluster, sans ...string) {
	c.TransportSocketMatches = []*clusterv3.Cluster_TransportSocketMatch{
		{Name: "tlsMode-istio", Match: &structpb.Struct{Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("istio")}},
			TransportSocket: istioMutual(t, sans...)},
		{Name: "tlsMode-disabled", Match: &structpb.Struct{}, TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.raw_buffer",
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: anyOf(t, &rawbufferv3.RawBuffer{})}}},
	}
}

// sidecarEndpoint is an EDS assignment whose endpoint has a sidecar (tlsMode istio).
func sidecarEndpoint(name, addr string) *endpointv3.ClusterLoadAssignment {
	md := istioMeta("server", "default", "server", map[string]any{"app": "server"})
	md.FilterMetadata["envoy.transport_socket_match"], _ = structpb.NewStruct(map[string]any{"tlsMode": "istio"})
	return claMeta(name, md, addr)
}

// mtlsMesh is a CA, a control plane, a backend behind a server sidecar, and a
// client sidecar whose outbound listener routes to the server sidecar.
type mtlsMesh struct {
	ca         *meshCA
	cp         *controlPlane
	backend    *backend
	seen       chan http.Header
	client     *runningProxy
	server     *runningProxy
	outAddr    string // client sidecar's outbound listener
	inAddr     string // server sidecar's inbound listener
	clientCert *identity.Agent
	serverCert *identity.Agent
}

// newMTLSMesh sets up the mesh; mode is the server's inbound mode; clientTLS
// mutates the client's cluster to the server (nil: plaintext).
func newMTLSMesh(t *testing.T, mode string, ttl time.Duration, clientTLS func(*clusterv3.Cluster)) *mtlsMesh {
	t.Helper()
	m := &mtlsMesh{ca: startMeshCA(t), cp: startControlPlane(t, ""), seen: make(chan http.Header, 1024)}
	m.backend = startBackend(t, "server-app", func(w http.ResponseWriter, r *http.Request) {
		select {
		case m.seen <- r.Header.Clone():
		default:
		}
		_, _ = io.WriteString(w, "server-app")
	})
	m.clientCert = m.ca.agent(t, "client", ttl)
	m.serverCert = m.ca.agent(t, "server", ttl)
	in, out := freePort(t), freePort(t)
	m.inAddr, m.outAddr = hostPort(in), hostPort(out)
	m.cp.pushFor(t, serverNode, resources(
		[]types.Resource{inboundMTLSListener(t, in, mode)},
		[]types.Resource{routeConfig("inbound", routeTo("/", "inbound|app"))},
		[]types.Resource{clusterWith("inbound|app", nil)},
		[]types.Resource{cla("inbound|app", m.backend.addr)}))
	m.pushClient(t, clientTLS)
	m.server = startMeshProxy(t, m.cp.addr, serverNode, "server", m.serverCert)
	m.client = startMeshProxy(t, m.cp.addr, clientNode, "client", m.clientCert)
	return m
}

func (m *mtlsMesh) pushClient(t *testing.T, clientTLS func(*clusterv3.Cluster)) {
	t.Helper()
	out := port(m.outAddr)
	m.cp.pushFor(t, clientNode, resources(
		[]types.Resource{listenerOf(t, "outbound", "127.0.0.1", int(out), true, hcmFilter(t, "outbound"))},
		[]types.Resource{routeConfig("outbound", routeTo("/", "outbound|80||server"))},
		[]types.Resource{clusterWith("outbound|80||server", clientTLS)},
		[]types.Resource{sidecarEndpoint("outbound|80||server", m.inAddr)}))
}

// call sends GET / to addr with a fresh client and returns status and body,
// or an error when no HTTP response came.
func call(addr string, hdr map[string]string) (int, string, error) {
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

func (m *mtlsMesh) lastSeen(t *testing.T) http.Header {
	t.Helper()
	select {
	case h := <-m.seen:
		return h
	case <-time.After(5 * time.Second):
		t.Fatal("backend saw no request")
	}
	return nil
}

func adminGet(t *testing.T, rp *runningProxy, path string) string {
	t.Helper()
	return httpGet(t, "http://"+rp.p.AdminAddr()+path)
}

func TestMTLSModes(t *testing.T) {
	cases := []struct {
		mode            string
		clientTLS       bool // the client sidecar's cluster uses auto mTLS
		plaintextWorks  bool // a client without a sidecar reaches the server
		wantSecurityTag string
	}{
		{"STRICT", true, false, "mutual_tls"},
		{"PERMISSIVE", true, true, "mutual_tls"},
		{"DISABLE", false, true, "none"},
	}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			var mut func(*clusterv3.Cluster)
			if tc.clientTLS {
				mut = func(c *clusterv3.Cluster) { autoMTLS(t, c, serverID) }
			}
			m := newMTLSMesh(t, tc.mode, time.Hour, mut)

			// Through the client sidecar: mesh traffic (mTLS unless DISABLE).
			// A client-sent XFCC is never forwarded as is.
			code, body, err := call(m.outAddr, map[string]string{"x-forwarded-client-cert": "URI=spiffe://evil/ns/x/sa/y"})
			if err != nil || code != 200 || body != "server-app" {
				t.Fatalf("via client sidecar: %d %q %v\nclient log:\n%s", code, body, err, m.client.log.String())
			}
			h := m.lastSeen(t)
			xfcc := h.Get("x-forwarded-client-cert")
			if tc.clientTLS {
				want := "By=" + serverID + ";Hash="
				if !strings.HasPrefix(xfcc, want) || !strings.HasSuffix(xfcc, `;Subject="";URI=`+clientID) {
					t.Errorf("backend saw x-forwarded-client-cert %q, want By=%s;Hash=<sha256>;Subject=\"\";URI=%s", xfcc, serverID, clientID)
				}
				if h.Get("x-bowline-peer-metadata") != "" {
					t.Error("the peer metadata header reached the app")
				}
			} else if xfcc != "" {
				t.Errorf("plaintext request carried x-forwarded-client-cert %q to the app", xfcc)
			}

			// A client without a sidecar, straight to the server sidecar.
			code, _, err = call(m.inAddr, nil)
			switch {
			case tc.plaintextWorks && (err != nil || code != 200):
				t.Errorf("plaintext client: %d %v, want 200", code, err)
			case !tc.plaintextWorks && err == nil:
				t.Errorf("plaintext client got HTTP %d from a STRICT server, want the connection closed", code)
			}
			if tc.plaintextWorks {
				if xfcc := m.lastSeen(t).Get("x-forwarded-client-cert"); xfcc != "" {
					t.Errorf("plaintext client: backend saw x-forwarded-client-cert %q", xfcc)
				}
			}

			// The server sidecar's metrics name the peer.
			want := `connection_security_policy="` + tc.wantSecurityTag + `"`
			deadline := time.Now().Add(5 * time.Second)
			for {
				stats := adminGet(t, m.server, "/stats/prometheus")
				ok := strings.Contains(stats, want)
				if tc.clientTLS {
					ok = ok && strings.Contains(stats, `source_principal="`+clientID+`"`) &&
						strings.Contains(stats, `source_workload="client"`) && strings.Contains(stats, `source_workload_namespace="default"`) &&
						strings.Contains(stats, `source_app="client"`)
				}
				if ok {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("server metrics lack %s / source labels:\n%s", want, truncate(stats))
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// TestMTLSRejectsOtherTrustDomain: a workload certified by another CA is
// refused by the server sidecar, and a sidecar with such a certificate
// cannot reach it (503 UF).
func TestMTLSRejectsOtherTrustDomain(t *testing.T) {
	m := newMTLSMesh(t, "STRICT", time.Hour, func(c *clusterv3.Cluster) { autoMTLS(t, c, serverID) })
	other := startMeshCA(t).agent(t, "client", time.Hour)

	// A raw mTLS client holding the other CA's certificate.
	cfg := other.ClientConfig(spiffeid.MatchAny())
	cfg.VerifyPeerCertificate = nil // only the server's decision is under test
	tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: cfg}
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + m.inAddr + "/")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("a client of another trust domain got HTTP %d", resp.StatusCode)
	}

	// A client sidecar whose identity comes from the other CA.
	cp := startControlPlane(t, "")
	out := freePort(t)
	cp.pushFor(t, clientNode, resources(
		[]types.Resource{listenerOf(t, "outbound", "127.0.0.1", out, true, hcmFilter(t, "outbound"))},
		[]types.Resource{routeConfig("outbound", routeTo("/", "outbound|80||server"))},
		[]types.Resource{clusterWith("outbound|80||server", func(c *clusterv3.Cluster) { autoMTLS(t, c, serverID) })},
		[]types.Resource{sidecarEndpoint("outbound|80||server", m.inAddr)}))
	stranger := startMeshProxy(t, cp.addr, clientNode, "client", other)
	code, _, err := call(hostPort(out), nil)
	if err != nil || code != 503 {
		t.Fatalf("stranger sidecar: %d %v, want 503", code, err)
	}
	if log := stranger.log.String(); !strings.Contains(log, `"response_flags":"UF"`) || !strings.Contains(log, "upstream_transport_failure_reason") {
		t.Errorf("access log lacks UF and the TLS failure reason:\n%s", log)
	}
}

// TestMTLSSANMismatch: the destination's certificate is valid but its SPIFFE
// ID is not one the cluster accepts (DestinationRule subjectAltNames).
func TestMTLSSANMismatch(t *testing.T) {
	m := newMTLSMesh(t, "STRICT", time.Hour, func(c *clusterv3.Cluster) {
		c.TransportSocket = istioMutual(t, "spiffe://cluster.local/ns/default/sa/someone-else")
	})
	code, body, err := call(m.outAddr, nil)
	if err != nil || code != 503 {
		t.Fatalf("SAN mismatch: %d %q %v, want 503", code, body, err)
	}
	if !strings.Contains(body, "transport failure reason") {
		t.Errorf("body %q does not say why", body)
	}
	log := m.client.log.String()
	if !strings.Contains(log, `"response_flags":"UF"`) || !strings.Contains(log, `"upstream_transport_failure_reason":`) ||
		!strings.Contains(log, "match none of the configured ones") {
		t.Errorf("access log lacks UF and the SAN failure:\n%s", log)
	}
	// The right SAN works.
	m.pushClient(t, func(c *clusterv3.Cluster) { c.TransportSocket = istioMutual(t, serverID) })
	waitFor(t, "request with the right SAN", func() bool {
		code, _, err := call(m.outAddr, nil)
		return err == nil && code == 200
	})
}

// TestTLSOriginationSimple: DestinationRule SIMPLE to an external HTTPS
// server works with its CA and fails (UF) with a bundle that does not hold it.
func TestTLSOriginationSimple(t *testing.T) {
	ext := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "external:"+r.TLS.ServerName)
	}))
	ext.Config.ErrorLog = log.New(io.Discard, "", 0) // the failing case's handshake error is expected
	ext.StartTLS()
	t.Cleanup(ext.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ext.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	simple := func(ca string) func(*clusterv3.Cluster) {
		return func(c *clusterv3.Cluster) {
			c.TransportSocket = tlsSocket(t, &tlsv3.UpstreamTlsContext{Sni: "example.com", CommonTlsContext: &tlsv3.CommonTlsContext{
				ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
					TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: ca}}}}}})
		}
	}
	cp := startControlPlane(t, "")
	out := freePort(t)
	push := func(mut func(*clusterv3.Cluster)) {
		cp.pushFor(t, clientNode, resources(
			[]types.Resource{listenerOf(t, "outbound", "127.0.0.1", out, true, hcmFilter(t, "outbound"))},
			[]types.Resource{routeConfig("outbound", routeTo("/", "outbound|443||api"))},
			[]types.Resource{clusterWith("outbound|443||api", mut)},
			[]types.Resource{cla("outbound|443||api", ext.Listener.Addr().String())}))
	}
	push(simple(caFile))
	px := startMeshProxy(t, cp.addr, clientNode, "client", nil) // no identity needed for SIMPLE
	code, body, err := call(hostPort(out), nil)
	if err != nil || code != 200 || body != "external:example.com" {
		t.Fatalf("SIMPLE with caCertificates: %d %q %v\n%s", code, body, err, px.log.String())
	}
	// The system bundle (Istio's default without caCertificates) does not
	// hold the test server's certificate.
	if _, err := os.Stat("/etc/ssl/certs/ca-certificates.crt"); err != nil {
		t.Skip("no system CA bundle")
	}
	push(simple("/etc/ssl/certs/ca-certificates.crt"))
	waitFor(t, "503 UF with the system bundle", func() bool {
		code, _, err := call(hostPort(out), nil)
		return err == nil && code == 503
	})
	if !strings.Contains(px.log.String(), "CERTIFICATE_VERIFY_FAILED") {
		t.Errorf("access log lacks the verification failure:\n%s", px.log.String())
	}
}

// TestMTLSNoIdentityNACKs: a proxy without identity refuses SDS-based TLS
// and keeps serving its last good config.
func TestMTLSNoIdentityNACKs(t *testing.T) {
	cp := startControlPlane(t, "")
	b := startBackend(t, "app", nil)
	out := freePort(t)
	res := func(mut func(*clusterv3.Cluster)) {
		cp.pushFor(t, clientNode, resources(
			[]types.Resource{listenerOf(t, "outbound", "127.0.0.1", out, true, hcmFilter(t, "outbound"))},
			[]types.Resource{routeConfig("outbound", routeTo("/", "c"))},
			[]types.Resource{clusterWith("c", mut)},
			[]types.Resource{cla("c", b.addr)}))
	}
	res(nil)
	px := startMeshProxy(t, cp.addr, clientNode, "client", nil)
	res(func(c *clusterv3.Cluster) { c.TransportSocket = istioMutual(t, serverID) })
	time.Sleep(300 * time.Millisecond)
	code, body, err := call(hostPort(out), nil)
	if err != nil || code != 200 || body != "app" {
		t.Fatalf("last good config: %d %q %v", code, body, err)
	}
	if !strings.Contains(px.log.String(), "") {
		t.Fatal("unreachable")
	}
}

// TestMTLSRotation: with 2 s certificates (rotated at half life) requests
// keep flowing through two sidecars, and fresh mTLS handshakes keep
// succeeding, for several rotations: no request fails.
func TestMTLSRotation(t *testing.T) {
	m := newMTLSMesh(t, "STRICT", 2*time.Second, func(c *clusterv3.Cluster) { autoMTLS(t, c, serverID) })
	dur := 6 * time.Second
	if testing.Short() {
		dur = 3 * time.Second
	}
	var ok, failed atomic.Int64
	var mu sync.Mutex
	var failures []string
	serials := map[string]bool{}
	fail := func(s string) {
		failed.Add(1)
		mu.Lock()
		if len(failures) < 5 {
			failures = append(failures, s)
		}
		mu.Unlock()
	}
	stop := time.Now().Add(dur)
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ { // through both sidecars, pooled connections
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &http.Client{Timeout: 5 * time.Second}
			for time.Now().Before(stop) {
				resp, err := cl.Get("http://" + m.outAddr + "/")
				if err != nil {
					fail(err.Error())
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					fail(resp.Status)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Add(1)
	go func() { // a new mTLS handshake per request, with the client agent's certificate
		defer wg.Done()
		for time.Now().Before(stop) {
			cfg := m.clientCert.ClientConfig(matchID(serverID))
			tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: cfg}
			resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + m.inAddr + "/")
			if err != nil {
				fail("handshake: " + err.Error())
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				fail(resp.Status)
				continue
			}
			mu.Lock()
			serials[resp.TLS.PeerCertificates[0].SerialNumber.String()] = true
			mu.Unlock()
			ok.Add(1)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d of %d requests failed during rotation: %v", failed.Load(), failed.Load()+ok.Load(), failures)
	}
	if len(serials) < 3 {
		t.Errorf("saw %d server certificates in %s, want rotations at 1 s", len(serials), dur)
	}
	t.Logf("%d requests, %d server certificates", ok.Load(), len(serials))
}

func matchID(id string) spiffeid.Matcher { return spiffeid.MatchID(spiffeid.RequireFromString(id)) }

func wrapperspbTrue() *wrapperspb.BoolValue { return wrapperspb.Bool(true) }

// A plaintext keep-alive connection accepted under PERMISSIVE is closed when
// the inbound chain turns STRICT: its next request is not served.
func TestMTLSStrictClosesPlaintextKeepAlive(t *testing.T) {
	m := newMTLSMesh(t, "PERMISSIVE", time.Hour, func(c *clusterv3.Cluster) { autoMTLS(t, c, serverID) })
	keep := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	defer keep.CloseIdleConnections()
	get := func() (int, error) {
		resp, err := keep.Get("http://" + m.inAddr + "/")
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	if code, err := get(); err != nil || code != 200 {
		t.Fatalf("plaintext under PERMISSIVE: %d %v, want 200", code, err)
	}
	in := port(m.inAddr)
	m.cp.pushFor(t, serverNode, resources(
		[]types.Resource{inboundMTLSListener(t, int(in), "STRICT")},
		[]types.Resource{routeConfig("inbound", routeTo("/", "inbound|app"))},
		[]types.Resource{clusterWith("inbound|app", nil)},
		[]types.Resource{cla("inbound|app", m.backend.addr)}))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, _, err := call(m.inAddr, nil); err != nil {
			break // a new plaintext connection is refused: STRICT is in place
		}
		if time.Now().After(deadline) {
			t.Fatal("STRICT not applied after 10s")
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	if code, err := get(); err == nil {
		t.Errorf("the PERMISSIVE-era keep-alive connection got HTTP %d under STRICT, want it closed", code)
	}
	// Mesh traffic still flows.
	if code, body, err := call(m.outAddr, nil); err != nil || code != 200 || body != "server-app" {
		t.Errorf("via the client sidecar under STRICT: %d %q %v", code, body, err)
	}
}

// TestMTLSResumption: a client that reconnects to a sidecar's mTLS
// listener resumes its TLS 1.3 session (the listener keeps one tls.Config,
// and with it its session ticket keys), and still reaches the app as the
// same verified peer.
func TestMTLSResumption(t *testing.T) {
	m := newMTLSMesh(t, "STRICT", time.Hour, nil)
	cfg := m.clientCert.ClientConfig(matchID(serverID))
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(8)
	get := func() *tls.ConnectionState {
		tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: cfg}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + m.inAddr + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != "server-app" {
			t.Fatalf("status %d %q", resp.StatusCode, b)
		}
		return resp.TLS
	}
	if first := get(); first.DidResume {
		t.Fatal("first connection resumed")
	}
	// TLS 1.3 tickets arrive after the handshake; the first response read
	// them. A few tries absorb a ticket that came after the body.
	resumed := false
	for range 3 {
		st := get()
		if st.DidResume {
			resumed = true
			break
		}
	}
	if !resumed {
		t.Fatal("reconnections never resumed the TLS session")
	}
	if xfcc := m.lastSeen(t).Get("x-forwarded-client-cert"); !strings.HasSuffix(xfcc, "URI="+clientID) {
		t.Errorf("resumed connection: backend saw x-forwarded-client-cert %q, want the client's URI", xfcc)
	}
}

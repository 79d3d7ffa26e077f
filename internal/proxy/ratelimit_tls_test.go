package proxy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitcfgv3 "github.com/envoyproxy/go-control-plane/envoy/config/ratelimit/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	lrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// selfSignedCert is a server certificate for 127.0.0.1 and dns, and the
// PEM file of it to trust.
func selfSignedCert(t *testing.T, dns string) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: dns},
		DNSNames: []string{dns}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, file
}

// startRLSWith serves the test rate limit service with opts on loopback.
func startRLSWith(t *testing.T, opts ...grpc.ServerOption) (*testRLS, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testRLS{}
	srv := grpc.NewServer(opts...)
	rlsv3.RegisterRateLimitServiceServer(srv, s)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return s, ln.Addr().String()
}

// TestGlobalRateLimitServiceOverTLS: the ratelimit filter reaches its
// service with the transport socket of the service's cluster, as Envoy's
// envoy_grpc does — one-way TLS to a gRPC server with its own certificate
// (the cluster's context names no ALPN; h2 is offered, as Envoy does), and
// ISTIO_MUTUAL to a service behind a STRICT sidecar. The service's verdict
// reaches the client (429 for /limited), which a plaintext dial would not
// get (the check fails and the request is let through).
func TestGlobalRateLimitServiceOverTLS(t *testing.T) {
	bk := startBackend(t, "app", nil)
	mca := startMeshCA(t)
	cert, caFile := selfSignedCert(t, "ratelimit.example")
	_, tlsRLS := startRLSWith(t, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
	_, plainRLS := startRLSWith(t)

	// A server sidecar: STRICT mTLS, TCP to the plaintext service.
	cp := startControlPlane(t, "")
	in := freePort(t)
	inbound := listenerOf(t, "inbound|8081", "127.0.0.1", in, true, tcpFilter(t, "inbound|8081||"))
	inbound.FilterChains[0].TransportSocket = downstreamMTLS(t)
	cp.pushFor(t, serverNode, resources([]types.Resource{inbound}, nil,
		[]types.Resource{edsCluster("inbound|8081||")}, []types.Resource{cla("inbound|8081||", plainRLS)}))
	startMeshProxy(t, cp.addr, serverNode, "server", mca.agent(t, "server", time.Hour))

	cases := []struct {
		name   string
		socket *corev3.TransportSocket
		addr   string
	}{
		{"SIMPLE", tlsSocket(t, &tlsv3.UpstreamTlsContext{Sni: "ratelimit.example", CommonTlsContext: &tlsv3.CommonTlsContext{
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: caFile}}}}}}), tlsRLS},
		{"ISTIO_MUTUAL", istioMutual(t, serverID), hostPort(in)},
	}
	lp := freePort(t)
	filter := httpFilter(t, "envoy.filters.http.ratelimit", &rlv3.RateLimit{Domain: "d", FailureModeDeny: false,
		Timeout: durationpb.New(5 * time.Second),
		RateLimitService: &ratelimitcfgv3.RateLimitServiceConfig{TransportApiVersion: corev3.ApiVersion_V3,
			GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
				EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "outbound|8081||ratelimit"}}}}})
	rc := routeConfig("80", routeTo("/", "app"))
	rc.VirtualHosts[0].RateLimits = []*routev3.RateLimit{{Actions: []*routev3.RateLimit_Action{{ActionSpecifier: &routev3.RateLimit_Action_RequestHeaders_{
		RequestHeaders: &routev3.RateLimit_Action_RequestHeaders{HeaderName: ":path", DescriptorKey: "PATH"}}}}}}
	push := func(socket *corev3.TransportSocket, addr string) {
		cp.pushFor(t, clientNode, resources(
			[]types.Resource{listenerOf(t, "gw", "127.0.0.1", lp, true, hcmWith(t, "80", filter))},
			[]types.Resource{rc},
			[]types.Resource{edsCluster("app"), clusterWith("outbound|8081||ratelimit", func(c *clusterv3.Cluster) { c.TransportSocket = socket })},
			[]types.Resource{cla("app", bk.addr), cla("outbound|8081||ratelimit", addr)}))
	}
	push(cases[0].socket, cases[0].addr)
	startMeshProxy(t, cp.addr, clientNode, "client", mca.agent(t, "client", time.Hour))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			push(tc.socket, tc.addr)
			hc := &http.Client{}
			defer hc.CloseIdleConnections()
			// Poll until the pushed listener serves and its service answers.
			waitFor(t, "the service's OVER_LIMIT through "+tc.name, func() bool {
				c, err := net.Dial("tcp", hostPort(lp))
				if err != nil {
					return false
				}
				c.Close()
				resp, _ := get(t, hc, hostPort(lp), "app", "/limited", nil)
				return resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("x-rls") == "OVER_LIMIT"
			})
			resp, body := get(t, hc, hostPort(lp), "app", "/ok", nil)
			if resp.StatusCode != 200 || body != "app" || resp.Header.Get("x-rls") != "OK" {
				t.Fatalf("/ok: %d %q x-rls %q, want 200 from app with the service's x-rls OK", resp.StatusCode, body, resp.Header.Get("x-rls"))
			}
		})
	}
}

// TestLocalRateLimitBucketsAfterPushes: a push that changes a route's local
// rate limit replaces its limiter; the old one is dropped, so the original
// config pushed again starts with full buckets (as Envoy builds new buckets
// for a new config), instead of finding the tokens it had spent.
func TestLocalRateLimitBucketsAfterPushes(t *testing.T) {
	bk := startBackend(t, "app", nil)
	lp := freePort(t)
	res := func(tokens uint32) map[string][]types.Resource {
		perRoute := &lrlv3.LocalRateLimit{StatPrefix: "rl",
			TokenBucket:             &typev3.TokenBucket{MaxTokens: tokens, TokensPerFill: wrapperspb.UInt32(tokens), FillInterval: durationpb.New(time.Hour)},
			EnableXRatelimitHeaders: commonrlv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03,
			FilterEnabled:           full(), FilterEnforced: full()}
		r := routeTo("/", "app")
		r.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.local_ratelimit": anyOf(t, perRoute)}
		return resources(
			[]types.Resource{listenerOf(t, "in", "127.0.0.1", lp, true, hcmWith(t, "80",
				httpFilter(t, "envoy.filters.http.local_ratelimit", &lrlv3.LocalRateLimit{StatPrefix: "http_local_rate_limiter"})))},
			[]types.Resource{routeConfig("80", r)},
			[]types.Resource{edsCluster("app")},
			[]types.Resource{cla("app", bk.addr)})
	}
	e := newEnv(t, res(2))
	hc := &http.Client{}
	defer hc.CloseIdleConnections()
	ask := func() (int, string) {
		resp, _ := get(t, hc, hostPort(lp), "app", "/", nil)
		return resp.StatusCode, resp.Header.Get("x-ratelimit-limit") + "/" + resp.Header.Get("x-ratelimit-remaining")
	}
	waitFor(t, "listener up", func() bool {
		c, err := net.Dial("tcp", hostPort(lp))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	for i, want := range []string{"200 2/1", "200 2/0", "429 2/0"} {
		if code, h := ask(); itoa(code)+" "+h != want {
			t.Fatalf("request %d: %d %s, want %s", i+1, code, h, want)
		}
	}
	e.cp.push(t, res(5))
	waitFor(t, "the 5-token limit in force", func() bool {
		_, h := ask()
		return h == "5/3" // the first answer of the new bucket may have been 5/4
	})
	e.cp.push(t, res(2))
	waitFor(t, "the 2-token limit back", func() bool {
		_, h := ask()
		return len(h) > 0 && h[0] == '2'
	})
	// The first answer of the returned config took one token: one is left,
	// not the empty bucket of the first config.
	if code, h := ask(); code != 200 || h != "2/0" {
		t.Fatalf("after the config came back: %d %s, want 200 2/0 (fresh buckets)", code, h)
	}
}

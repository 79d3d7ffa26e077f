package ca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	pb "istio.io/api/security/v1alpha1"
)

// startServer runs a CA server on 127.0.0.1:0 until the test ends.
func startServer(t *testing.T, c *CA, authn Authenticator) *Server {
	t.Helper()
	srv, err := NewServer(ServerConfig{Address: "127.0.0.1:0", CA: c, Authenticator: authn})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	select {
	case <-srv.Listening():
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	return srv
}

func dialCA(t *testing.T, srv *Server, roots []*x509.Certificate, serverName string) pb.IstioCertificateServiceClient {
	t.Helper()
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	conn, err := grpc.NewClient(srv.Addr().String(),
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: serverName})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewIstioCertificateServiceClient(conn)
}

func withToken(t *testing.T, token string) context.Context {
	ctx := t.Context()
	if token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

func TestCreateCertificate(t *testing.T) {
	c := newTestCA(t, Config{Now: time.Now, MaxTTL: 48 * time.Hour})
	tokens := NewTokens()
	webTok := tokens.Mint("default", "web")
	dbTok := tokens.Mint("prod", "db")
	revoked := tokens.Mint("default", "old")
	tokens.Revoke(revoked)
	srv := startServer(t, c, tokens)

	// The serving certificate is valid for the address and istiod's name.
	for _, name := range []string{"127.0.0.1", "istiod.istio-system.svc"} {
		client := dialCA(t, srv, c.TrustBundle(), name)
		resp, err := client.CreateCertificate(withToken(t, webTok), &pb.IstioCertificateRequest{Csr: string(newCSR(t, nil, csrOptions{}))})
		if err != nil {
			t.Fatalf("server name %s: %v", name, err)
		}
		if len(resp.CertChain) != 2 {
			t.Fatalf("cert_chain has %d elements, want leaf and root", len(resp.CertChain))
		}
	}

	client := dialCA(t, srv, c.TrustBundle(), "istiod.istio-system.svc")
	// web asks for db's identity in its CSR: it gets web's.
	steal := csrOptions{uris: []string{"spiffe://cluster.local/ns/prod/sa/db"}, dns: []string{"db.prod.svc"}}
	tests := []struct {
		name     string
		token    string
		csr      csrOptions
		ttl      int64
		imperson string
		wantCode codes.Code
		wantID   string
		wantMsg  string
		wantTTL  time.Duration
	}{
		{name: "web", token: webTok, wantID: "spiffe://cluster.local/ns/default/sa/web", wantTTL: 24 * time.Hour},
		{name: "db with requested TTL", token: dbTok, ttl: 3600, wantID: "spiffe://cluster.local/ns/prod/sa/db", wantTTL: time.Hour},
		{name: "web asking for db's identity gets web's", token: webTok, csr: steal, wantID: "spiffe://cluster.local/ns/default/sa/web", wantTTL: 24 * time.Hour},
		{name: "web impersonating db is refused", token: webTok, imperson: "spiffe://cluster.local/ns/prod/sa/db",
			wantCode: codes.Unauthenticated, wantMsg: "request impersonation authentication failure"},
		{name: "web naming itself as the impersonated identity", token: webTok, imperson: "spiffe://cluster.local/ns/default/sa/web",
			wantID: "spiffe://cluster.local/ns/default/sa/web", wantTTL: 24 * time.Hour},
		{name: "no token", wantCode: codes.Unauthenticated, wantMsg: "no authorization metadata"},
		{name: "wrong token", token: webTok + "x", wantCode: codes.Unauthenticated, wantMsg: "unknown bearer token"},
		{name: "revoked token", token: revoked, wantCode: codes.Unauthenticated, wantMsg: "unknown bearer token"},
		{name: "TTL over max", token: webTok, ttl: 49 * 3600, wantCode: codes.InvalidArgument, wantMsg: "greater than the max allowed TTL"},
		{name: "TTL overflow", token: webTok, ttl: 1 << 62, wantCode: codes.InvalidArgument, wantMsg: "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			req := &pb.IstioCertificateRequest{Csr: string(newCSR(t, nil, tt.csr)), ValidityDuration: tt.ttl}
			if tt.imperson != "" {
				req.Metadata = &structpb.Struct{Fields: map[string]*structpb.Value{ImpersonatedIdentityKey: structpb.NewStringValue(tt.imperson)}}
			}
			resp, err := client.CreateCertificate(withToken(t, tt.token), req)
			if tt.wantCode != codes.OK {
				if status.Code(err) != tt.wantCode || !strings.Contains(status.Convert(err).Message(), tt.wantMsg) {
					t.Fatalf("err = %v, want %s containing %q", err, tt.wantCode, tt.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			chain, err := ParseCertificates([]byte(strings.Join(resp.CertChain, "")))
			if err != nil {
				t.Fatal(err)
			}
			leaf, root := chain[0], chain[len(chain)-1]
			if !root.Equal(c.TrustBundle()[0]) {
				t.Error("last element is not the root")
			}
			if len(leaf.URIs) != 1 || leaf.URIs[0].String() != tt.wantID || len(leaf.DNSNames) != 0 {
				t.Errorf("URIs %v DNS %v, want exactly %s", leaf.URIs, leaf.DNSNames, tt.wantID)
			}
			if d := leaf.NotAfter.Sub(start) - tt.wantTTL; d < -2*time.Second || d > 2*time.Second {
				t.Errorf("lifetime %s, want %s", leaf.NotAfter.Sub(start), tt.wantTTL)
			}
		})
	}
}

func TestCreateCertificateBadCSR(t *testing.T) {
	c := newTestCA(t, Config{Now: time.Now})
	tokens := NewTokens()
	tok := tokens.Mint("default", "web")
	srv := startServer(t, c, tokens)
	client := dialCA(t, srv, c.TrustBundle(), "127.0.0.1")
	_, err := client.CreateCertificate(withToken(t, tok), &pb.IstioCertificateRequest{Csr: "garbage"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "csr is not PEM") {
		t.Fatalf("err = %v, want InvalidArgument csr is not PEM", err)
	}
}

func TestServerRejectsUntrustedClientView(t *testing.T) {
	c := newTestCA(t, Config{Now: time.Now})
	other := newTestCA(t, Config{Now: time.Now})
	srv := startServer(t, c, NewTokens())
	client := dialCA(t, srv, other.TrustBundle(), "127.0.0.1")
	_, err := client.CreateCertificate(withToken(t, "x"), &pb.IstioCertificateRequest{})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("err = %v, want a TLS verification failure", err)
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		name string
		md   metadata.MD
		want string
		err  string
	}{
		{"ok", metadata.Pairs("authorization", "Bearer abc"), "abc", ""},
		{"lowercase scheme", metadata.Pairs("authorization", "bearer abc"), "abc", ""},
		{"missing", metadata.MD{}, "", "no authorization metadata"},
		{"basic", metadata.Pairs("authorization", "Basic abc"), "", "not of the form"},
		{"empty token", metadata.Pairs("authorization", "Bearer  "), "", "not of the form"},
		{"two", metadata.Pairs("authorization", "Bearer a", "authorization", "Bearer b"), "", "more than one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BearerToken(metadata.NewIncomingContext(context.Background(), tt.md))
			if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
}

func TestTokensAreDistinctAndHashed(t *testing.T) {
	tokens := NewTokens()
	a, b := tokens.Mint("default", "web"), tokens.Mint("default", "web")
	if a == b || len(a) != 43 {
		t.Fatalf("tokens %q %q: want distinct 256-bit tokens", a, b)
	}
	for h := range tokens.byHash {
		if strings.Contains(string(h[:]), a) {
			t.Fatal("token stored in clear")
		}
	}
	id, err := tokens.Authenticate(metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+b)))
	if err != nil || id != web {
		t.Fatalf("got %v, %v", id, err)
	}
}

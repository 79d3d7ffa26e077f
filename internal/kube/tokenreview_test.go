package kube_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"
	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bowline-mesh/bowline/internal/ca"
	"github.com/bowline-mesh/bowline/internal/kube"
)

func TestTokenReviewAuthenticatesServiceAccounts(t *testing.T) {
	c, kc, _ := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := apply(t, c, `
apiVersion: v1
kind: Namespace
metadata: {name: tr}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: reviews, namespace: tr}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: doomed, namespace: tr}
`); err != nil {
		t.Fatal(err)
	}
	token := func(sa, audience string) string {
		t.Helper()
		tr, err := kc.CoreV1().ServiceAccounts("tr").CreateToken(ctx, sa, &authnv1.TokenRequest{
			Spec: authnv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: ptr(int64(600))}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	right := token("reviews", kube.CAAudience)
	otherAudience := token("reviews", "vault")
	doomed := token("doomed", kube.CAAudience)
	if err := kc.CoreV1().ServiceAccounts("tr").Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	// A CA serving IstioCertificateService with the TokenReview
	// authenticator, called the way a sidecar calls it.
	dir := t.TempDir()
	authority, err := ca.New(ca.Config{Dir: dir, TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.NewServer(ca.ServerConfig{Address: "127.0.0.1:0", CA: authority, Authenticator: kube.NewTokenReviewer(kc, nil)})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("ca server: %v", err)
		}
	}()
	<-srv.Listening()
	pool := x509.NewCertPool()
	for _, r := range authority.TrustBundle() {
		pool.AddCert(r)
	}
	conn, err := grpc.NewClient(srv.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: ca.DefaultServingHost})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewIstioCertificateServiceClient(conn)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))

	tests := []struct {
		name, token string
		wantID      string
		wantErr     string
	}{
		{"right token", right, "spiffe://cluster.local/ns/tr/sa/reviews", ""},
		{"token for another audience", otherAudience, "", "token rejected by the API server: "},
		{"token of a deleted service account", doomed, "", "token rejected by the API server: "},
		{"not a token", "garbage", "", "token rejected by the API server: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			callCtx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tt.token)
			resp, err := client.CreateCertificate(callCtx, &pb.IstioCertificateRequest{Csr: csr})
			if tt.wantErr != "" {
				if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want Unauthenticated containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			block, _ := pem.Decode([]byte(resp.CertChain[0]))
			leaf, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if len(leaf.URIs) != 1 || leaf.URIs[0].String() != tt.wantID {
				t.Fatalf("certificate for %v, want %s", leaf.URIs, tt.wantID)
			}
		})
	}
}

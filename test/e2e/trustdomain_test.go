package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/internal/ca"
)

// TestTrustDomainAliasesEndToEnd: a workload migrating from trust domain
// old.td calls a sidecar over mTLS with its old.td identity (signed by the
// mesh's root). An AuthorizationPolicy allowing
// cluster.local/ns/default/sa/legacy refuses it until MeshConfig lists
// old.td in trustDomainAliases; then it is allowed, as in Istio, while an
// identity of another trust domain still is not.
func TestTrustDomainAliasesEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	backend := startHTTPBackend(t)
	inPort := freePort(t)
	dir := t.TempDir()
	writeAtomic(t, filepath.Join(dir, "policy.yaml"), `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: legacy, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/legacy]}}]
`)
	caDir := t.TempDir()
	meshCA, err := ca.New(ca.Config{Dir: caDir})
	if err != nil {
		t.Fatal(err)
	}
	cp := &meshCP{root: filepath.Join(caDir, ca.RootCertFile), tokens: ca.NewTokens(), dir: t.TempDir()}
	cp.xds, _ = runDiscovery(t, secureDiscoveryConfig(dir, meshCA, cp.tokens))
	sc := startSidecar(t, cp, map[uint32]uint32{uint32(inPort): uint32(backend)})
	sc.waitConfig(t, "spiffe://cluster.local/ns/default/sa/legacy")

	// Identities of other trust domains, signed by the same root.
	client := func(td string) *tls.Config { return meshClientTLS(t, caDir, td, "default", "legacy") }
	call := func(cfg *tls.Config) (int, string) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", inPort), cfg)
		if err != nil {
			t.Fatalf("mTLS to the sidecar: %v", err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.WriteString(c, "GET /legacy HTTP/1.1\r\nHost: web.default.svc.cluster.local\r\nConnection: close\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("response: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	oldTD, otherTD, local := client("old.td"), client("other.td"), client("cluster.local")
	for _, c := range []struct {
		name   string
		cfg    *tls.Config
		status int
		body   string
	}{
		{"cluster.local identity", local, 200, "backend GET /legacy"},
		{"old.td identity, no alias", oldTD, 403, "RBAC: access denied"},
	} {
		if code, body := call(c.cfg); code != c.status || body != c.body {
			t.Errorf("%s: %d %q, want %d %q", c.name, code, body, c.status, c.body)
		}
	}

	writeAtomic(t, filepath.Join(dir, "mesh.yaml"), `apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    trustDomainAliases: [old.td]
`)
	sc.waitConfig(t, "spiffe://old.td/ns/default/sa/legacy")
	for _, c := range []struct {
		name   string
		cfg    *tls.Config
		status int
		body   string
	}{
		{"old.td identity, aliased", oldTD, 200, "backend GET /legacy"},
		{"cluster.local identity", local, 200, "backend GET /legacy"},
		{"other.td identity", otherTD, 403, "RBAC: access denied"},
	} {
		if code, body := call(c.cfg); code != c.status || body != c.body {
			t.Errorf("%s: %d %q, want %d %q", c.name, code, body, c.status, c.body)
		}
	}
}

// meshClientTLS is what a sidecar client presents: an identity
// spiffe://td/ns/ns/sa/sa signed by the mesh CA of caDir (its material
// loaded with trust domain td), Istio's ALPN, and the server's chain
// verified against the mesh roots (its identity is a SPIFFE URI, not a host
// name).
func meshClientTLS(t *testing.T, caDir, td, ns, sa string) *tls.Config {
	t.Helper()
	c, err := ca.New(ca.Config{Dir: caDir, TrustDomain: td})
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := c.Sign(ca.SignParams{CSR: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
		Identity: ca.Identity{Namespace: ns, ServiceAccount: sa}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{PrivateKey: key}
	for _, x := range iss.Chain {
		cert.Certificate = append(cert.Certificate, x.Raw)
	}
	roots := x509.NewCertPool()
	for _, r := range c.TrustBundle() {
		roots.AddCert(r)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"istio", "http/1.1"},
		MinVersion: tls.VersionTLS13, InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			return err
		}}
}

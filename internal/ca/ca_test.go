package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

var web = Identity{Namespace: "default", ServiceAccount: "web"}

func TestSign(t *testing.T) {
	c := newTestCA(t, Config{TrustDomain: "example.org", DefaultTTL: 24 * time.Hour, MaxTTL: 48 * time.Hour})
	evil := csrOptions{uris: []string{"spiffe://example.org/ns/kube-system/sa/admin"}, dns: []string{"evil.example.com"},
		ips: []string{"10.0.0.1"}, cn: "admin"}
	tests := []struct {
		name         string
		ttl          time.Duration
		csr          csrOptions
		wantNotAfter time.Time
		wantErr      string
	}{
		{name: "default TTL", wantNotAfter: t0.Add(24 * time.Hour)},
		{name: "negative TTL takes the default", ttl: -time.Hour, wantNotAfter: t0.Add(24 * time.Hour)},
		{name: "requested TTL honoured", ttl: 2 * time.Second, wantNotAfter: t0.Add(2 * time.Second)},
		{name: "TTL equal to the max", ttl: 48 * time.Hour, wantNotAfter: t0.Add(48 * time.Hour)},
		{name: "TTL over the max refused", ttl: 49 * time.Hour, wantErr: "requested TTL 49h0m0s is greater than the max allowed TTL 48h0m0s"},
		{name: "CSR SANs and subject ignored", csr: evil, wantNotAfter: t0.Add(24 * time.Hour)},
	}
	bundle := x509bundle.FromX509Authorities(c.TrustDomain(), c.TrustBundle())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			issued, err := c.Sign(SignParams{CSR: newCSR(t, nil, tt.csr), Identity: web, TTL: tt.ttl})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidRequest) {
					t.Fatalf("err = %v, want %q wrapping ErrInvalidRequest", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			leaf := issued.Leaf()
			if got := leaf.NotAfter; !got.Equal(tt.wantNotAfter) {
				t.Errorf("NotAfter = %s, want %s", got, tt.wantNotAfter)
			}
			if got, want := leaf.NotBefore, t0.Add(-time.Minute); !got.Equal(want) {
				t.Errorf("NotBefore = %s, want %s (backdated)", got, want)
			}
			if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://example.org/ns/default/sa/web" {
				t.Errorf("URIs = %v, want exactly spiffe://example.org/ns/default/sa/web", leaf.URIs)
			}
			if len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 || leaf.Subject.CommonName != "" {
				t.Errorf("CSR content leaked: dns %v ip %v subject %q", leaf.DNSNames, leaf.IPAddresses, leaf.Subject)
			}
			if leaf.IsCA || !leaf.BasicConstraintsValid {
				t.Errorf("IsCA = %v, BasicConstraintsValid = %v", leaf.IsCA, leaf.BasicConstraintsValid)
			}
			if want := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment; leaf.KeyUsage != want {
				t.Errorf("KeyUsage = %v, want %v", leaf.KeyUsage, want)
			}
			if len(leaf.ExtKeyUsage) != 2 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || leaf.ExtKeyUsage[1] != x509.ExtKeyUsageClientAuth {
				t.Errorf("ExtKeyUsage = %v, want serverAuth, clientAuth", leaf.ExtKeyUsage)
			}
			if len(leaf.SubjectKeyId) == 0 || !bytes.Equal(leaf.AuthorityKeyId, c.TrustBundle()[0].SubjectKeyId) {
				t.Errorf("SKI %x AKI %x, want SKI set and AKI = root SKI %x", leaf.SubjectKeyId, leaf.AuthorityKeyId, c.TrustBundle()[0].SubjectKeyId)
			}
			id, _, err := x509svid.Verify(issued.Chain, bundle, x509svid.WithTime(t0))
			if err != nil {
				t.Fatalf("SVID does not verify: %v", err)
			}
			if id.String() != "spiffe://example.org/ns/default/sa/web" {
				t.Errorf("verified ID %s", id)
			}
			if _, _, err := x509svid.Verify(issued.Chain, bundle, x509svid.WithTime(leaf.NotAfter.Add(time.Second))); err == nil {
				t.Error("SVID still verifies after NotAfter")
			}
		})
	}
}

func TestSignClampsToCAExpiry(t *testing.T) {
	c := newTestCA(t, Config{RootTTL: 10 * time.Hour})
	issued, err := c.Sign(SignParams{CSR: newCSR(t, nil, csrOptions{}), Identity: web})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := issued.Leaf().NotAfter, c.TrustBundle()[0].NotAfter; !got.Equal(want) {
		t.Errorf("NotAfter = %s, want the CA's %s", got, want)
	}
	later := newTestCA(t, Config{RootTTL: time.Hour, Now: fixedClock(t0)})
	later.cfg.Now = fixedClock(t0.Add(2 * time.Hour))
	if _, err := later.Sign(SignParams{CSR: newCSR(t, nil, csrOptions{}), Identity: web}); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("signing with an expired CA: err = %v, want expired", err)
	}
}

func TestSignRejects(t *testing.T) {
	c := newTestCA(t, Config{})
	good := newCSR(t, nil, csrOptions{})
	block, _ := pem.Decode(good)
	tampered := bytes.Clone(block.Bytes)
	tampered[len(tampered)-5] ^= 0xff
	rsaSmall, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		csr      []byte
		identity Identity
		want     string
	}{
		{"empty", nil, web, "csr is empty"},
		{"not PEM", []byte("hello"), web, "csr is not PEM"},
		{"wrong block", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes}), web, `want CERTIFICATE REQUEST`},
		{"bad signature", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered}), web, "csr"},
		{"RSA 1024", newCSR(t, rsaSmall, csrOptions{}), web, "RSA key of 1024 bits is not accepted"},
		{"P-224", newCSR(t, p224, csrOptions{}), web, "ECDSA curve P-224 is not accepted"},
		{"empty namespace", good, Identity{ServiceAccount: "web"}, "namespace is empty"},
		{"slash in service account", good, Identity{Namespace: "default", ServiceAccount: "a/b"}, "service account"},
		{"too large", bytes.Repeat([]byte("A"), maxCSRSize+1), web, "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Sign(SignParams{CSR: tt.csr, Identity: tt.identity})
			if err == nil || !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q wrapping ErrInvalidRequest", err, tt.want)
			}
		})
	}
}

func TestNewCreatesAndReloadsRoot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cacerts")
	c := newTestCA(t, Config{Dir: dir, TrustDomain: "example.org"})
	for name, mode := range map[string]os.FileMode{CACertFile: 0o644, CAKeyFile: 0o600, RootCertFile: 0o644, CertChainFile: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), mode)
		}
	}
	root := c.TrustBundle()[0]
	if !root.IsCA || !root.BasicConstraintsValid || root.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("root constraints: IsCA %v, key usage %v", root.IsCA, root.KeyUsage)
	}
	if len(root.SubjectKeyId) != 20 || !bytes.Equal(root.SubjectKeyId, root.AuthorityKeyId) {
		t.Errorf("root SKI %x AKI %x, want equal 20-byte ids", root.SubjectKeyId, root.AuthorityKeyId)
	}
	if got := KeyDescription(root.PublicKey); got != "ECDSA P-256" {
		t.Errorf("root key %s", got)
	}
	if got, want := root.NotAfter, t0.Add(DefaultRootTTL); !got.Equal(want) {
		t.Errorf("root NotAfter %s, want %s", got, want)
	}
	if root.Subject.Organization[0] != "example.org" {
		t.Errorf("root subject %s", root.Subject)
	}
	again := newTestCA(t, Config{Dir: dir, TrustDomain: "example.org", Now: fixedClock(t0.Add(time.Hour))})
	if !again.TrustBundle()[0].Equal(root) {
		t.Error("second start created a new root instead of loading the persisted one")
	}
	if err := again.Reload(); err != nil {
		t.Fatal(err)
	}
}

// writeLayout writes m into a fresh directory.
func writeLayout(t *testing.T, m *Material) string {
	t.Helper()
	dir := t.TempDir()
	if err := m.Write(WriteParams{Dir: dir, Now: t0}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPluggedInIntermediate(t *testing.T) {
	root, err := NewRoot(RootParams{TrustDomain: "example.org", Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	inter, err := NewIntermediate(IntermediateParams{Parent: root, TrustDomain: "example.org", Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	dir := writeLayout(t, inter)
	chainPEM, _ := os.ReadFile(filepath.Join(dir, CertChainFile))
	chain, _ := ParseCertificates(chainPEM)
	if len(chain) != 2 || !chain[0].Equal(inter.Cert) || !chain[1].Equal(root.Cert) {
		t.Fatalf("cert-chain.pem holds %d certs, want ca-cert then root", len(chain))
	}
	c := newTestCA(t, Config{Dir: dir, TrustDomain: "example.org"})
	issued, err := c.Sign(SignParams{CSR: newCSR(t, nil, csrOptions{}), Identity: web})
	if err != nil {
		t.Fatal(err)
	}
	if len(issued.Chain) != 2 || !issued.Chain[1].Equal(inter.Cert) {
		t.Fatalf("chain has %d certs, want leaf and intermediate", len(issued.Chain))
	}
	if len(issued.Roots) != 1 || !issued.Roots[0].Equal(root.Cert) {
		t.Fatal("roots are not the plugged-in root")
	}
	bundle := x509bundle.FromX509Authorities(spiffeid.RequireTrustDomainFromString("example.org"), issued.Roots)
	if _, _, err := x509svid.Verify(issued.Chain, bundle, x509svid.WithTime(t0)); err != nil {
		t.Fatalf("does not verify to the root: %v", err)
	}
	if inter.Cert.MaxPathLen != 0 || !inter.Cert.MaxPathLenZero {
		t.Error("intermediate path length is not 0")
	}
	if !bytes.Equal(inter.Cert.AuthorityKeyId, root.Cert.SubjectKeyId) {
		t.Error("intermediate AKI is not the root's SKI")
	}
}

func TestLoadMaterialErrors(t *testing.T) {
	root, _ := NewRoot(RootParams{TrustDomain: "example.org", Now: t0})
	other, _ := NewRoot(RootParams{TrustDomain: "example.org", Now: t0})
	inter, _ := NewIntermediate(IntermediateParams{Parent: root, Now: t0})
	shortLived, _ := NewIntermediate(IntermediateParams{Parent: root, Now: t0, TTL: time.Hour})
	leafCA := newTestCA(t, Config{})
	leaf, err := leafCA.IssueServing([]string{"x"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(dir string)
		now    time.Time
		want   string
	}{
		{"key does not match", func(dir string) { copyFile(t, root.keyPEM(t), dir, CAKeyFile) }, t0, "ca-key.pem does not match the public key of ca-cert.pem"},
		{"not a CA", func(dir string) {
			copyFile(t, EncodeCertificates(leaf.Leaf), dir, CACertFile)
			k, _ := EncodePrivateKey(leaf.PrivateKey.(*ecdsa.PrivateKey))
			copyFile(t, k, dir, CAKeyFile)
		}, t0, "is not a CA"},
		{"chain to another root", func(dir string) { copyFile(t, EncodeCertificates(other.Cert), dir, RootCertFile) }, t0, "does not chain to a certificate in root-cert.pem"},
		{"expired", func(dir string) {
			copyFile(t, EncodeCertificates(shortLived.Cert), dir, CACertFile)
			copyFile(t, shortLived.keyPEM(t), dir, CAKeyFile)
		}, t0.Add(2 * time.Hour), "expired"},
		{"missing key", func(dir string) { os.Remove(filepath.Join(dir, CAKeyFile)) }, t0, "read ca-key.pem"},
		{"garbage root", func(dir string) { copyFile(t, []byte("junk"), dir, RootCertFile) }, t0, "root-cert.pem: no PEM CERTIFICATE block found"},
		{"truncated cert", func(dir string) {
			b := EncodeCertificates(inter.Cert)
			copyFile(t, b[:len(b)-40], dir, CACertFile)
		}, t0, "ca-cert.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeLayout(t, inter)
			tt.mutate(dir)
			_, err := New(Config{Dir: dir, Now: fixedClock(tt.now)})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func (m *Material) keyPEM(t *testing.T) []byte {
	t.Helper()
	b, err := EncodePrivateKey(m.Key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func copyFile(t *testing.T, data []byte, dir, name string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestWriteRefusesOverwrite(t *testing.T) {
	root, _ := NewRoot(RootParams{TrustDomain: "example.org", Now: t0})
	dir := writeLayout(t, root)
	other, _ := NewRoot(RootParams{TrustDomain: "example.org", Now: t0})
	if err := other.Write(WriteParams{Dir: dir, Now: t0}); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("err = %v, want refusal", err)
	}
	if err := other.Write(WriteParams{Dir: dir, Now: t0, Force: true}); err != nil {
		t.Fatal(err)
	}
	m, err := LoadMaterial(dir, t0)
	if err != nil || !m.Cert.Equal(other.Cert) {
		t.Fatalf("forced write not in effect: %v", err)
	}
}

// TestRootRotation walks the documented procedure: trust old+new, switch the
// signing cert to the new root's intermediate, certificates of both generations
// verify against the bundle meanwhile, then retire the old root.
func TestRootRotation(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("cluster.local")
	dir := t.TempDir()
	c := newTestCA(t, Config{Dir: dir})
	oldRoot := c.TrustBundle()[0]
	oldLeaf, err := c.Sign(SignParams{CSR: newCSR(t, nil, csrOptions{}), Identity: web})
	if err != nil {
		t.Fatal(err)
	}

	// Step 1: add the new root to the bundle.
	newRoot, _ := NewRoot(RootParams{TrustDomain: "cluster.local", Now: t0})
	copyFile(t, EncodeCertificates(oldRoot, newRoot.Cert), dir, RootCertFile)
	if err := c.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := len(c.TrustBundle()); got != 2 {
		t.Fatalf("bundle has %d roots, want 2", got)
	}

	// Step 2: sign with an intermediate of the new root, both roots trusted.
	inter, _ := NewIntermediate(IntermediateParams{Parent: newRoot, TrustDomain: "cluster.local", Now: t0})
	inter.Roots = []*x509.Certificate{oldRoot, newRoot.Cert}
	if err := inter.Write(WriteParams{Dir: dir, Now: t0, Force: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(); err != nil {
		t.Fatal(err)
	}
	newLeaf, err := c.Sign(SignParams{CSR: newCSR(t, nil, csrOptions{}), Identity: web})
	if err != nil {
		t.Fatal(err)
	}
	both := x509bundle.FromX509Authorities(td, newLeaf.Roots)
	for name, chain := range map[string][]*x509.Certificate{"old": oldLeaf.Chain, "new": newLeaf.Chain} {
		if _, _, err := x509svid.Verify(chain, both, x509svid.WithTime(t0)); err != nil {
			t.Errorf("%s certificate does not verify against the two-root bundle: %v", name, err)
		}
	}

	// Step 3: retire the old root.
	copyFile(t, EncodeCertificates(newRoot.Cert), dir, RootCertFile)
	if err := c.Reload(); err != nil {
		t.Fatal(err)
	}
	onlyNew := x509bundle.FromX509Authorities(td, c.TrustBundle())
	if _, _, err := x509svid.Verify(oldLeaf.Chain, onlyNew, x509svid.WithTime(t0)); err == nil {
		t.Error("old certificate still verifies after the old root retired")
	}
	if _, _, err := x509svid.Verify(newLeaf.Chain, onlyNew, x509svid.WithTime(t0)); err != nil {
		t.Errorf("new certificate: %v", err)
	}

	// A broken directory leaves the current material in force.
	copyFile(t, EncodeCertificates(oldRoot), dir, RootCertFile)
	if err := c.Reload(); err == nil {
		t.Fatal("reload accepted a root that does not sign the CA cert")
	}
	if !c.TrustBundle()[0].Equal(newRoot.Cert) {
		t.Error("failed reload replaced the bundle")
	}
}

func TestIssueServing(t *testing.T) {
	c := newTestCA(t, Config{})
	cert, err := c.IssueServing([]string{"istiod.istio-system.svc", "127.0.0.1", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	leaf := cert.Leaf
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "istiod.istio-system.svc" || len(leaf.IPAddresses) != 2 {
		t.Errorf("SANs dns %v ip %v", leaf.DNSNames, leaf.IPAddresses)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cluster.local/ns/istio-system/sa/istiod" {
		t.Errorf("URIs %v", leaf.URIs)
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	sc := c.NewServingCertificate([]string{"a.example"})
	first, err := sc.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := sc.Certificate(); again != first {
		t.Error("serving certificate re-issued before half its lifetime")
	}
	c.cfg.Now = fixedClock(t0.Add(13 * time.Hour))
	if renewed, _ := sc.Certificate(); renewed == first {
		t.Error("serving certificate not renewed after half its lifetime")
	}
}

func TestIdentityFromID(t *testing.T) {
	tests := []struct {
		id   string
		want Identity
		ok   bool
	}{
		{"spiffe://cluster.local/ns/default/sa/web", web, true},
		{"spiffe://cluster.local/ns/default/sa", Identity{}, false},
		{"spiffe://cluster.local/ns/default/sa/web/x", Identity{}, false},
		{"spiffe://cluster.local/foo/default/sa/web", Identity{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			got, err := IdentityFromID(spiffeid.RequireFromString(tt.id))
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("got %v, %v", got, err)
			}
		})
	}
}

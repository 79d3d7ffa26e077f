package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"testing"
)

// FuzzSignCSR feeds arbitrary bytes to the CSR path. Sign must never panic,
// and whatever the CSR says, a certificate it issues names the caller alone.
func FuzzSignCSR(f *testing.F) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	good := newCSR(f, key, csrOptions{})
	evil := newCSR(f, key, csrOptions{uris: []string{"spiffe://cluster.local/ns/kube-system/sa/admin", "spiffe://other/ns/a/sa/b"},
		dns: []string{"admin.kube-system.svc"}, ips: []string{"127.0.0.1"}, cn: "admin"})
	block, _ := pem.Decode(evil)
	f.Add(good)
	f.Add(evil)
	f.Add(block.Bytes)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "NEW CERTIFICATE REQUEST", Bytes: block.Bytes}))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte{})

	c := newTestCA(f, Config{})
	root := c.TrustBundle()[0]
	f.Fuzz(func(t *testing.T, data []byte) {
		issued, err := c.Sign(SignParams{CSR: data, Identity: web})
		if err != nil {
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("error not marked as the caller's: %v", err)
			}
			return
		}
		leaf := issued.Leaf()
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cluster.local/ns/default/sa/web" {
			t.Fatalf("issued for %v, want only the caller", leaf.URIs)
		}
		if len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 || leaf.IsCA {
			t.Fatalf("issued with extra names or as CA: dns %v ip %v email %v ca %v", leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses, leaf.IsCA)
		}
		if err := leaf.CheckSignatureFrom(root); err != nil {
			t.Fatalf("not signed by the CA: %v", err)
		}
		if leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
			t.Fatal("ext key usage changed")
		}
	})
}

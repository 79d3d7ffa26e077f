package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// certSpec is one certificate the cluster needs.
type certSpec struct {
	file   string   // DIR/file.crt and DIR/file.key
	cn     string   // the user name (client) or subject (server)
	orgs   []string // the groups of a client certificate
	server bool
	dns    []string
	ips    []net.IP
}

// kubeconfigSpec is a component's kubeconfig, authenticating with a client certificate.
type kubeconfigSpec struct{ file, cert string }

func pkiMain(args []string) error {
	fs := flag.NewFlagSet("pki", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory for the certificates and kubeconfigs")
	nodeIP := fs.String("node-ip", "", "the node's (and API server's) address")
	nodeName := fs.String("node-name", "", "the node's name")
	serviceIP := fs.String("service-ip", "", "the kubernetes Service's cluster IP")
	if err := fs.Parse(args); err != nil {
		return err
	}
	node, svc := net.ParseIP(*nodeIP), net.ParseIP(*serviceIP)
	switch {
	case *dir == "":
		return errors.New("pki: -dir is required")
	case node == nil:
		return fmt.Errorf("pki: -node-ip %q is not an IP address", *nodeIP)
	case svc == nil:
		return fmt.Errorf("pki: -service-ip %q is not an IP address", *serviceIP)
	case *nodeName == "":
		return errors.New("pki: -node-name is required")
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	ca, caKey, err := loadOrCreateCA(*dir)
	if err != nil {
		return err
	}
	loopback := net.ParseIP("127.0.0.1")
	certs := []certSpec{
		{file: "apiserver", cn: "kube-apiserver", server: true, ips: []net.IP{node, svc, loopback},
			dns: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}},
		{file: "apiserver-kubelet-client", cn: "kube-apiserver-kubelet-client", orgs: []string{"system:masters"}},
		{file: "kubelet-server", cn: *nodeName, server: true, ips: []net.IP{node}, dns: []string{*nodeName}},
		{file: "admin", cn: "kubernetes-admin", orgs: []string{"system:masters"}},
		{file: "controller-manager", cn: "system:kube-controller-manager"},
		{file: "scheduler", cn: "system:kube-scheduler"},
		{file: "kubelet", cn: "system:node:" + *nodeName, orgs: []string{"system:nodes"}},
		{file: "kube-proxy", cn: "system:kube-proxy"},
		{file: "coredns", cn: "system:bowline-kit:coredns"},
	}
	for _, c := range certs {
		if err := ensureCert(*dir, c, ca, caKey); err != nil {
			return fmt.Errorf("pki: %s: %w", c.file, err)
		}
	}
	if err := ensureServiceAccountKey(*dir); err != nil {
		return fmt.Errorf("pki: service-account key: %w", err)
	}
	server := "https://" + net.JoinHostPort(node.String(), "6443")
	for _, k := range []kubeconfigSpec{
		{"admin.kubeconfig", "admin"}, {"controller-manager.kubeconfig", "controller-manager"},
		{"scheduler.kubeconfig", "scheduler"}, {"kubelet.kubeconfig", "kubelet"},
		{"kube-proxy.kubeconfig", "kube-proxy"}, {"coredns.kubeconfig", "coredns"},
	} {
		if err := writeKubeconfig(*dir, k, server); err != nil {
			return fmt.Errorf("pki: %s: %w", k.file, err)
		}
	}
	return nil
}

func loadOrCreateCA(dir string) (*x509.Certificate, crypto.Signer, error) {
	crtPath, keyPath := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if crtPEM, err := os.ReadFile(crtPath); err == nil {
		keyPEM, err := os.ReadFile(keyPath)
		if err != nil {
			return nil, nil, fmt.Errorf("pki: %s without %s: %w", crtPath, keyPath, err)
		}
		return parsePair(crtPEM, keyPEM)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "bowline-kube-kit-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	if err := writePair(dir, "ca", der, key); err != nil {
		return nil, nil, err
	}
	ca, err := x509.ParseCertificate(der)
	return ca, key, err
}

func ensureCert(dir string, c certSpec, ca *x509.Certificate, caKey crypto.Signer) error {
	if _, err := os.Stat(filepath.Join(dir, c.file+".crt")); err == nil {
		return nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: c.cn, Organization: c.orgs},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		DNSNames:     c.dns,
		IPAddresses:  c.ips,
	}
	if c.server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return err
	}
	return writePair(dir, c.file, der, key)
}

// ensureServiceAccountKey writes sa.key/sa.pub, the key pair the API server
// and controller-manager sign and verify ServiceAccount tokens with.
func ensureServiceAccountKey(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "sa.key")); err == nil {
		return nil
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return err
	}
	priv, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}), 0o600)
}

func writeKubeconfig(dir string, k kubeconfigSpec, server string) error {
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		return base64.StdEncoding.EncodeToString(b), err
	}
	ca, err := read("ca.crt")
	if err != nil {
		return err
	}
	crt, err := read(k.cert + ".crt")
	if err != nil {
		return err
	}
	key, err := read(k.cert + ".key")
	if err != nil {
		return err
	}
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: bowline-kube
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: bowline-kube
  context:
    cluster: bowline-kube
    user: %s
current-context: bowline-kube
`, server, ca, k.cert, crt, key, k.cert)
	return os.WriteFile(filepath.Join(dir, k.file), []byte(cfg), 0o600)
}

func writePair(dir, name string, der []byte, key *ecdsa.PrivateKey) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func parsePair(crtPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	cb, _ := pem.Decode(crtPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, errors.New("pki: ca.crt or ca.key is not PEM")
	}
	crt, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: ca.crt: %w", err)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: ca.key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, nil, errors.New("pki: ca.key is not a signing key")
	}
	return crt, signer, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return n
}

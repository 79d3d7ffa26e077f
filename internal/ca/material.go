package ca

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// File names of Istio's cacerts layout, read by New and written by Write.
const (
	// CACertFile is the signing certificate (a root, or an intermediate plugged in).
	CACertFile = "ca-cert.pem"
	// CAKeyFile is the signing key; written with mode 0600.
	CAKeyFile = "ca-key.pem"
	// RootCertFile holds the trust bundle: one root, or several during a root rotation.
	RootCertFile = "root-cert.pem"
	// CertChainFile is the chain from ca-cert.pem up to its root, ca-cert.pem first.
	CertChainFile = "cert-chain.pem"
)

// Defaults for creating CA certificates.
const (
	// DefaultRootTTL is the lifetime of a self-signed root: 10 years.
	DefaultRootTTL = 10 * 365 * 24 * time.Hour
	// DefaultIntermediateTTL is the lifetime of an intermediate made by NewIntermediate: 1 year.
	DefaultIntermediateTTL = 365 * 24 * time.Hour
	// backdate moves NotBefore into the past to tolerate clock skew between hosts.
	backdate = time.Minute
)

// Material is a CA's signing certificate and key, the certificates between it
// and its root, and the trust bundle. Validate checks that they fit together.
type Material struct {
	// Cert is the signing certificate (ca-cert.pem).
	Cert *x509.Certificate
	// Key is Cert's private key (ca-key.pem).
	Key crypto.Signer
	// Chain holds the certificates between Cert and the root, excluding both
	// (cert-chain.pem without its first and root entries). Empty for a root
	// or an intermediate signed by a root directly.
	Chain []*x509.Certificate
	// Roots is the trust bundle (root-cert.pem). Cert must chain to one of them;
	// the others are trusted too (root rotation).
	Roots []*x509.Certificate
}

// RootParams are the parameters of NewRoot.
type RootParams struct {
	// TrustDomain becomes the root's organization (Istio's convention).
	TrustDomain string
	// TTL is the root's lifetime; DefaultRootTTL when zero.
	TTL time.Duration
	// Now is the issuance time.
	Now time.Time
}

// NewRoot creates a self-signed ECDSA P-256 root CA.
func NewRoot(p RootParams) (*Material, error) {
	if p.TTL <= 0 {
		p.TTL = DefaultRootTTL
	}
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{p.TrustDomain}, CommonName: "Bowline Root CA"},
		NotBefore:             p.Now.Add(-backdate),
		NotAfter:              p.Now.Add(p.TTL),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          ski,
		AuthorityKeyId:        ski,
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create root certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse root certificate: %w", err)
	}
	return &Material{Cert: cert, Key: key, Roots: []*x509.Certificate{cert}}, nil
}

// IntermediateParams are the parameters of NewIntermediate.
type IntermediateParams struct {
	// Parent signs the intermediate: a root, or another intermediate.
	Parent *Material
	// TrustDomain becomes the intermediate's organization.
	TrustDomain string
	// TTL is the intermediate's lifetime, clamped to the parent's;
	// DefaultIntermediateTTL when zero.
	TTL time.Duration
	// Now is the issuance time.
	Now time.Time
}

// NewIntermediate creates an ECDSA P-256 intermediate CA (path length 0) signed
// by p.Parent, for plugging into a CA as its cacerts directory.
func NewIntermediate(p IntermediateParams) (*Material, error) {
	if p.Parent == nil || p.Parent.Cert == nil || p.Parent.Key == nil {
		return nil, errors.New("intermediate: no parent certificate and key")
	}
	if err := checkCA(p.Parent.Cert); err != nil {
		return nil, fmt.Errorf("intermediate: parent: %w", err)
	}
	if !publicKeysEqual(p.Parent.Cert.PublicKey, p.Parent.Key.Public()) {
		return nil, errors.New("intermediate: parent key does not match the parent certificate")
	}
	if p.TTL <= 0 {
		p.TTL = DefaultIntermediateTTL
	}
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	notAfter := p.Now.Add(p.TTL)
	if notAfter.After(p.Parent.Cert.NotAfter) {
		notAfter = p.Parent.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{p.TrustDomain}, CommonName: "Bowline Intermediate CA"},
		NotBefore:             p.Now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		SubjectKeyId:          ski,
	}
	der, err := x509.CreateCertificate(nil, tmpl, p.Parent.Cert, key.Public(), p.Parent.Key)
	if err != nil {
		return nil, fmt.Errorf("create intermediate certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse intermediate certificate: %w", err)
	}
	m := &Material{Cert: cert, Key: key, Roots: p.Parent.Roots}
	if !isSelfSigned(p.Parent.Cert) {
		m.Chain = append([]*x509.Certificate{p.Parent.Cert}, p.Parent.Chain...)
	}
	return m, nil
}

// checkCA reports why c cannot sign certificates.
func checkCA(c *x509.Certificate) error {
	if !c.BasicConstraintsValid || !c.IsCA {
		return fmt.Errorf("certificate %q is not a CA (basic constraints CA:FALSE or missing)", c.Subject)
	}
	if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("certificate %q has no certSign key usage", c.Subject)
	}
	return nil
}

func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

// Validate checks that Key matches Cert, Cert is a CA, every root is a CA,
// and Cert chains through Chain to one of Roots at now. It returns the
// verified chain, Cert first and the root last.
func (m *Material) Validate(now time.Time) ([]*x509.Certificate, error) {
	if m.Cert == nil || m.Key == nil {
		return nil, errors.New("no signing certificate or key")
	}
	if !publicKeysEqual(m.Cert.PublicKey, m.Key.Public()) {
		return nil, fmt.Errorf("%s does not match the public key of %s", CAKeyFile, CACertFile)
	}
	if err := checkCA(m.Cert); err != nil {
		return nil, fmt.Errorf("%s: %w", CACertFile, err)
	}
	if len(m.Roots) == 0 {
		return nil, fmt.Errorf("%s: no root certificate", RootCertFile)
	}
	roots := x509.NewCertPool()
	for _, r := range m.Roots {
		if err := checkCA(r); err != nil {
			return nil, fmt.Errorf("%s: %w", RootCertFile, err)
		}
		roots.AddCert(r)
	}
	inter := x509.NewCertPool()
	for _, c := range m.Chain {
		inter.AddCert(c)
	}
	chains, err := m.Cert.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, fmt.Errorf("%s does not chain to a certificate in %s: %w", CACertFile, RootCertFile, err)
	}
	return chains[0], nil
}

// LoadMaterial reads and validates a cacerts directory. ca-cert.pem and
// ca-key.pem are required; root-cert.pem defaults to ca-cert.pem when that is
// self-signed; cert-chain.pem is optional when ca-cert.pem is signed by a root
// directly.
func LoadMaterial(dir string, now time.Time) (*Material, error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		return b, nil
	}
	certPEM, err := read(CACertFile)
	if err != nil {
		return nil, err
	}
	certs, err := ParseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CACertFile, err)
	}
	keyPEM, err := read(CAKeyFile)
	if err != nil {
		return nil, err
	}
	key, err := ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CAKeyFile, err)
	}
	m := &Material{Cert: certs[0], Key: key}
	rootPEM, err := read(RootCertFile)
	switch {
	case err == nil:
		if m.Roots, err = ParseCertificates(rootPEM); err != nil {
			return nil, fmt.Errorf("%s: %w", RootCertFile, err)
		}
	case errors.Is(err, fs.ErrNotExist) && isSelfSigned(m.Cert):
		m.Roots = []*x509.Certificate{m.Cert}
	default:
		return nil, err
	}
	chainPEM, err := read(CertChainFile)
	switch {
	case err == nil:
		chain, err := ParseCertificates(chainPEM)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", CertChainFile, err)
		}
		m.Chain = trimChain(chain, m.Cert, m.Roots)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	if _, err := m.Validate(now); err != nil {
		return nil, err
	}
	return m, nil
}

// trimChain drops cert itself and any root from a cert-chain.pem list.
func trimChain(chain []*x509.Certificate, cert *x509.Certificate, roots []*x509.Certificate) []*x509.Certificate {
	var out []*x509.Certificate
outer:
	for _, c := range chain {
		if c.Equal(cert) {
			continue
		}
		for _, r := range roots {
			if c.Equal(r) {
				continue outer
			}
		}
		out = append(out, c)
	}
	return out
}

// LayoutExists reports whether dir holds any file of the cacerts layout.
func LayoutExists(dir string) (bool, error) {
	for _, name := range []string{CACertFile, CAKeyFile, RootCertFile, CertChainFile} {
		_, err := os.Stat(filepath.Join(dir, name))
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("stat %s: %w", name, err)
		}
	}
	return false, nil
}

// WriteParams are the parameters of Material.Write.
type WriteParams struct {
	// Dir receives the four files; it is created (0700) when missing.
	Dir string
	// Force overwrites an existing layout; without it Write refuses.
	Force bool
	// Now validates the material before anything is written.
	Now time.Time
}

// Write validates m and writes it as Istio's cacerts layout: ca-cert.pem,
// ca-key.pem (0600), root-cert.pem (every root) and cert-chain.pem (ca-cert
// first, up to and including its root).
func (m *Material) Write(p WriteParams) error {
	verified, err := m.Validate(p.Now)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", p.Dir, err)
	}
	if !p.Force {
		exists, err := LayoutExists(p.Dir)
		if err != nil {
			return err
		}
		if exists {
			return fmt.Errorf("%s already holds CA files; refusing to overwrite them (use --force)", p.Dir)
		}
	}
	keyPEM, err := EncodePrivateKey(m.Key)
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{CAKeyFile, keyPEM, 0o600},
		{CACertFile, EncodeCertificates(m.Cert), 0o644},
		{RootCertFile, EncodeCertificates(m.Roots...), 0o644},
		{CertChainFile, EncodeCertificates(verified...), 0o644},
	}
	for _, f := range files {
		if err := writeFileAtomic(filepath.Join(p.Dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// writeFileAtomic writes data to a temporary file in the same directory with
// mode, then renames it over path, so readers never see a partial file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

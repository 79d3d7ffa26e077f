package ca

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Defaults of Config.
const (
	DefaultTrustDomain = "cluster.local"
	// DefaultTTL is the workload certificate lifetime when the caller asks for none.
	DefaultTTL = 24 * time.Hour
	// DefaultMaxTTL is the longest workload certificate lifetime a caller may ask for.
	DefaultMaxTTL = 90 * 24 * time.Hour
)

// The control plane's own identity, put in the URI SAN of serving certificates
// (Istio's istiod service account).
const (
	ControlPlaneNamespace      = "istio-system"
	ControlPlaneServiceAccount = "istiod"
)

// Config configures a CA. Zero values take the defaults above.
type Config struct {
	// Dir is the cacerts directory (ca-cert.pem, ca-key.pem, root-cert.pem,
	// cert-chain.pem). When it holds none of them a self-signed root is
	// created and written there; when it holds them they are loaded and
	// validated (plug-in CA). When empty, the root lives in memory only.
	Dir string
	// TrustDomain is the SPIFFE trust domain of issued identities.
	TrustDomain string
	// DefaultTTL is the lifetime of a workload certificate whose request names none.
	DefaultTTL time.Duration
	// MaxTTL is the longest lifetime a request may ask for; longer requests are refused.
	MaxTTL time.Duration
	// RootTTL is the lifetime of a self-signed root created on first start.
	RootTTL time.Duration
	// Logger receives INFO/DEBUG logs; discarded when nil.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// CA signs workload and serving certificates. It is safe for concurrent use;
// Reload swaps the signing material atomically.
type CA struct {
	cfg Config
	td  spiffeid.TrustDomain
	log *slog.Logger
	mat atomic.Pointer[Material]
}

// New loads the CA from cfg.Dir, or creates a self-signed root there (or in
// memory when cfg.Dir is empty). It starts nothing.
func New(cfg Config) (*CA, error) {
	if cfg.TrustDomain == "" {
		cfg.TrustDomain = DefaultTrustDomain
	}
	td, err := spiffeid.TrustDomainFromString(cfg.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("trust domain %q: %w", cfg.TrustDomain, err)
	}
	if cfg.DefaultTTL <= 0 {
		cfg.DefaultTTL = DefaultTTL
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = DefaultMaxTTL
	}
	if cfg.DefaultTTL > cfg.MaxTTL {
		return nil, fmt.Errorf("default TTL %s is longer than the max TTL %s", cfg.DefaultTTL, cfg.MaxTTL)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &CA{cfg: cfg, td: td, log: cfg.Logger}
	m, err := c.loadOrCreate()
	if err != nil {
		return nil, err
	}
	c.mat.Store(m)
	c.log.Info("ca ready", slog.String(attrTrustDomain, td.Name()), slog.String(attrSubject, m.Cert.Subject.String()),
		slog.Int(attrRoots, len(m.Roots)), slog.Time(attrNotAfter, m.Cert.NotAfter))
	return c, nil
}

func (c *CA) loadOrCreate() (*Material, error) {
	now := c.cfg.Now()
	if c.cfg.Dir != "" {
		exists, err := LayoutExists(c.cfg.Dir)
		if err != nil {
			return nil, err
		}
		if exists {
			m, err := LoadMaterial(c.cfg.Dir, now)
			if err != nil {
				return nil, fmt.Errorf("load CA from %s: %w", c.cfg.Dir, err)
			}
			c.warnKeyMode()
			return m, nil
		}
	}
	m, err := NewRoot(RootParams{TrustDomain: c.td.Name(), TTL: c.cfg.RootTTL, Now: now})
	if err != nil {
		return nil, err
	}
	if c.cfg.Dir != "" {
		if err := m.Write(WriteParams{Dir: c.cfg.Dir, Now: now}); err != nil {
			return nil, fmt.Errorf("persist new root: %w", err)
		}
		c.log.Info("ca created self-signed root", slog.String(attrDir, c.cfg.Dir))
	}
	return m, nil
}

func (c *CA) warnKeyMode() {
	path := c.cfg.Dir + string(os.PathSeparator) + CAKeyFile
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		c.log.Info("ca key is readable by group or others", slog.String(attrFile, path))
	}
}

// Reload re-reads and validates cfg.Dir and swaps the signing material in
// atomically; on error the current material stays in force. Use it during a
// root rotation after editing the directory.
func (c *CA) Reload() error {
	if c.cfg.Dir == "" {
		return errors.New("reload: the CA has no directory")
	}
	m, err := LoadMaterial(c.cfg.Dir, c.cfg.Now())
	if err != nil {
		return fmt.Errorf("reload CA from %s: %w", c.cfg.Dir, err)
	}
	c.mat.Store(m)
	c.log.Info("ca reloaded", slog.String(attrSubject, m.Cert.Subject.String()), slog.Int(attrRoots, len(m.Roots)))
	return nil
}

// TrustDomain is the trust domain of the identities the CA issues.
func (c *CA) TrustDomain() spiffeid.TrustDomain { return c.td }

// TrustBundle returns the roots workloads must trust: one, or several (old
// and new) during a root rotation. The slice is a copy.
func (c *CA) TrustBundle() []*x509.Certificate {
	return append([]*x509.Certificate(nil), c.mat.Load().Roots...)
}

// SignParams are the parameters of Sign.
type SignParams struct {
	// CSR is the PEM-encoded certificate signing request. Only its public key
	// is used; its subject and SANs are ignored.
	CSR []byte
	// Identity is the authenticated caller: the only identity the certificate gets.
	Identity Identity
	// TTL is the requested lifetime; the CA's default when zero or negative.
	// A TTL over the CA's maximum is refused, as Istio does.
	TTL time.Duration
}

// Issued is a signed certificate with what a workload needs to use it.
type Issued struct {
	// Chain is the leaf first, then the intermediates up to but excluding the root.
	Chain []*x509.Certificate
	// Roots is the trust bundle at issuance.
	Roots []*x509.Certificate
}

// Leaf is the issued certificate.
func (i *Issued) Leaf() *x509.Certificate { return i.Chain[0] }

// Sign issues an X.509 SVID for p.Identity with the CSR's public key. Errors
// caused by the request wrap ErrInvalidRequest.
func (c *CA) Sign(p SignParams) (*Issued, error) {
	id, err := p.Identity.SPIFFEID(c.td)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	csr, err := parseCSR(p.CSR)
	if err != nil {
		return nil, err
	}
	ttl := p.TTL
	if ttl <= 0 {
		ttl = c.cfg.DefaultTTL
	}
	if ttl > c.cfg.MaxTTL {
		return nil, fmt.Errorf("%w: requested TTL %s is greater than the max allowed TTL %s", ErrInvalidRequest, ttl, c.cfg.MaxTTL)
	}
	return c.issue(issueParams{pub: csr.PublicKey, uri: id.URL(), ttl: ttl})
}

type issueParams struct {
	pub any
	uri *url.URL
	dns []string
	ips []net.IP
	ttl time.Duration
}

func (c *CA) issue(p issueParams) (*Issued, error) {
	m := c.mat.Load()
	now := c.cfg.Now()
	notBefore, notAfter := now.Add(-backdate), now.Add(p.ttl)
	if notBefore.Before(m.Cert.NotBefore) {
		notBefore = m.Cert.NotBefore
	}
	if notAfter.After(m.Cert.NotAfter) {
		// A certificate cannot outlive its issuer; the workload rotates sooner.
		notAfter = m.Cert.NotAfter
	}
	if !notAfter.After(now) {
		return nil, fmt.Errorf("signing certificate %q expired at %s", m.Cert.Subject, m.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(p.pub)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		SubjectKeyId:          ski,
		DNSNames:              p.dns,
		IPAddresses:           p.ips,
	}
	if p.uri != nil {
		tmpl.URIs = []*url.URL{p.uri}
	}
	der, err := x509.CreateCertificate(nil, tmpl, m.Cert, p.pub, m.Key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse signed certificate: %w", err)
	}
	chain := []*x509.Certificate{leaf}
	if !isSelfSigned(m.Cert) {
		chain = append(chain, m.Cert)
		chain = append(chain, m.Chain...)
	}
	return &Issued{Chain: chain, Roots: append([]*x509.Certificate(nil), m.Roots...)}, nil
}

// IssueServing issues a TLS serving certificate for the control plane (the CA
// API, and xDS over mTLS) for hosts (DNS names or IP addresses), with the
// control plane's SPIFFE ID as URI SAN and the CA's default TTL. The key is a
// new ECDSA P-256 key held in memory only.
func (c *CA) IssueServing(hosts []string) (*tls.Certificate, error) {
	if len(hosts) == 0 {
		return nil, errors.New("serving certificate: no host names")
	}
	id, err := Identity{Namespace: ControlPlaneNamespace, ServiceAccount: ControlPlaneServiceAccount}.SPIFFEID(c.td)
	if err != nil {
		return nil, err
	}
	p := issueParams{uri: id.URL(), ttl: c.cfg.DefaultTTL}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			p.ips = append(p.ips, ip)
		} else if h != "" {
			p.dns = append(p.dns, h)
		}
	}
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	p.pub = key.Public()
	issued, err := c.issue(p)
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	tc := &tls.Certificate{PrivateKey: key, Leaf: issued.Leaf()}
	for _, cert := range issued.Chain {
		tc.Certificate = append(tc.Certificate, cert.Raw)
	}
	return tc, nil
}

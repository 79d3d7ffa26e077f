package proxy

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// CertSource is the proxy's workload identity: the certificate served as
// SDS secret "default" and the trust bundle served as "ROOTCA".
// *identity.Agent implements it.
//
// Current is called at every TLS handshake, from many goroutines at once; it
// must be safe for concurrent use and cheap. It returns the certificate in
// force (with its private key, chain and Leaf set) and the pool of trusted
// roots, or nil, nil before the first certificate has arrived (handshakes
// then fail and are retried by clients). Rotation is the source's business:
// the next handshake sees the new certificate.
type CertSource interface {
	Current() (*tls.Certificate, *x509.CertPool)
}

// errNoIdentity is the NACK for TLS that needs a workload identity on a
// proxy that has none.
var errNoIdentity = errors.New("SDS secrets \"default\"/\"ROOTCA\" need the workload identity; this proxy has none (start it with a CA: --ca-address)")

// peerInfo is what an mTLS handshake established about the downstream peer.
type peerInfo struct {
	cert      *x509.Certificate
	principal string // URI SAN (SPIFFE ID)
	namespace string // from the SPIFFE ID
	account   string // service account, from the SPIFFE ID
	sni       string
	certHash  string // hex SHA-256 of the peer leaf (XFCC Hash)
	// xfcc caches the XFCC value for the connection's requests; it is
	// rebuilt when the proxy's own principal (By) changes.
	xfcc atomic.Pointer[xfccValue]
	// metaCache caches the decoded peer metadata header (tls_peermeta.go).
	metaCache atomic.Pointer[peerMetaCache]
}

type xfccValue struct{ by, value string }

func newPeerInfo(cs tls.ConnectionState) *peerInfo {
	pi := &peerInfo{sni: cs.ServerName}
	if len(cs.PeerCertificates) == 0 {
		return pi
	}
	c := cs.PeerCertificates[0]
	pi.cert = c
	sum := sha256.Sum256(c.Raw)
	pi.certHash = hex.EncodeToString(sum[:])
	if len(c.URIs) > 0 {
		pi.principal = c.URIs[0].String()
		pi.namespace, pi.account = spiffeParts(c.URIs[0])
	}
	return pi
}

// spiffeParts returns NS and SA of spiffe://td/ns/NS/sa/SA.
func spiffeParts(u *url.URL) (ns, sa string) {
	if u.Scheme != "spiffe" {
		return "", ""
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(parts) == 4 && parts[0] == "ns" && parts[2] == "sa" {
		return parts[1], parts[3]
	}
	return "", ""
}

// serverTLS builds the tls.Config of a DownstreamTlsContext. Certificates
// and roots from the identity or from SDS secrets are read at each
// handshake: a rotated identity or a changed Secret serves the next
// handshake, and connections already up are untouched.
func (p *Proxy) serverTLS(t *xdsconfig.TLSContext) *tls.Config {
	cfg := &tls.Config{MinVersion: t.MinVersion, MaxVersion: t.MaxVersion, NextProtos: t.ALPN, CipherSuites: t.CipherSuites}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	switch {
	case t.CertFromIdentity:
		cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return p.identityCert() }
	case t.CertSDS != "":
		cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return p.sdsCert(t.CertSDS) }
	default:
		cfg.Certificates = []tls.Certificate{*t.Cert}
	}
	switch {
	case t.RequireClientCert:
		cfg.ClientAuth = tls.RequireAnyClientCert
	case t.Verifies():
		cfg.ClientAuth = tls.RequestClientCert
	}
	if len(cfg.NextProtos) > 0 {
		cfg.GetConfigForClient = withoutUnsharedALPN(cfg)
	}
	if t.Verifies() {
		// VerifyConnection, not VerifyPeerCertificate: Go skips the latter on
		// resumed sessions, and this config (its ticket keys) outlives
		// snapshots, so a resumed client is verified against the roots and
		// SAN matchers in force now, not those of the first handshake.
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil // optional client certificate not sent
			}
			raw := make([][]byte, len(cs.PeerCertificates))
			for i, c := range cs.PeerCertificates {
				raw[i] = c.Raw
			}
			_, err := p.verifyPeer(t, raw)
			return err
		}
	}
	return cfg
}

// withoutUnsharedALPN returns a GetConfigForClient for cfg that lets a client
// whose ALPN offer shares no protocol with cfg.NextProtos handshake without
// ALPN, as Envoy does (BoringSSL's select callback answers "no ack"). Go's
// server would abort such a handshake with no_application_protocol: an
// Envoy sidecar offering istio-http/1.1 or istio-h2, which Istio's ALPN filter
// adds, would never connect.
func withoutUnsharedALPN(cfg *tls.Config) func(*tls.ClientHelloInfo) (*tls.Config, error) {
	return func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if len(hello.SupportedProtos) == 0 {
			return nil, nil
		}
		for _, p := range hello.SupportedProtos {
			if slices.Contains(cfg.NextProtos, p) {
				return nil, nil
			}
		}
		c := cfg.Clone()
		c.NextProtos = nil
		c.GetConfigForClient = nil
		return c, nil
	}
}

// clientTLS builds the tls.Config of an UpstreamTlsContext. Peers are
// verified like Envoy does: against the validation context's roots and SAN
// matchers, never against the host name; without a validation context the
// server certificate is not verified.
func (p *Proxy) clientTLS(t *xdsconfig.TLSContext) *tls.Config {
	cfg := &tls.Config{
		ServerName: t.SNI, MinVersion: t.MinVersion, MaxVersion: t.MaxVersion, NextProtos: t.ALPN, CipherSuites: t.CipherSuites,
		InsecureSkipVerify: true, // verified below, as Envoy does (roots + SAN matchers)
		// TLS 1.3 session resumption between sidecars: a new upstream
		// connection to a peer seen before skips the certificate exchange
		// and verification (the session was verified by this config).
		ClientSessionCache: tls.NewLRUClientSessionCache(256),
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if t.RootsSDS != "" {
		// A resumed session skips verification: with roots that a Secret
		// change can replace, every connection verifies against the
		// current ones.
		cfg.ClientSessionCache = nil
	}
	switch {
	case t.CertFromIdentity:
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return p.identityCert() }
	case t.CertSDS != "":
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return p.sdsCert(t.CertSDS) }
	case t.Cert != nil:
		cfg.Certificates = []tls.Certificate{*t.Cert}
	}
	if t.Verifies() {
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			_, err := p.verifyPeer(t, raw)
			return err
		}
	}
	return cfg
}

func (p *Proxy) identityCert() (*tls.Certificate, error) {
	if p.cfg.Identity == nil {
		return nil, errNoIdentity
	}
	cert, _ := p.cfg.Identity.Current()
	if cert == nil {
		return nil, errors.New("no workload certificate yet")
	}
	return cert, nil
}

// sdsCert returns the certificate of SDS secret name in the current snapshot.
func (p *Proxy) sdsCert(name string) (*tls.Certificate, error) {
	if s := p.snap.Load(); s != nil {
		if sec := s.secrets[name]; sec != nil && sec.Cert != nil {
			return sec.Cert, nil
		}
	}
	return nil, fmt.Errorf("SDS secret %q: no certificate yet", name)
}

// verifyPeer checks a peer chain against the context's roots (the identity's
// bundle for ROOTCA, the current SDS secret for RootsSDS) at the current
// time, then its SAN matchers.
func (p *Proxy) verifyPeer(t *xdsconfig.TLSContext, raw [][]byte) (*x509.Certificate, error) {
	if len(raw) == 0 {
		return nil, errors.New("peer presented no certificate")
	}
	roots := t.Roots
	if t.RootsSDS != "" {
		roots = nil
		if s := p.snap.Load(); s != nil {
			if sec := s.secrets[t.RootsSDS]; sec != nil {
				roots = sec.Roots
			}
		}
		if roots == nil {
			return nil, fmt.Errorf("SDS secret %q: no trust bundle yet", t.RootsSDS)
		}
	}
	if t.RootsFromIdentity {
		if p.cfg.Identity == nil {
			return nil, errNoIdentity
		}
		_, roots = p.cfg.Identity.Current()
		if roots == nil {
			return nil, errors.New("no trust bundle yet")
		}
	}
	certs := make([]*x509.Certificate, 0, len(raw))
	for _, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return nil, fmt.Errorf("peer certificate: %w", err)
		}
		certs = append(certs, c)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	leaf := certs[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: time.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("peer certificate: CERTIFICATE_VERIFY_FAILED: %w", err)
	}
	if len(t.SANs) > 0 && !sanMatches(leaf, t.SANs) {
		return nil, fmt.Errorf("peer certificate: CERTIFICATE_VERIFY_FAILED: subject alt names %v match none of the configured ones", sanList(leaf))
	}
	return leaf, nil
}

func sanMatches(c *x509.Certificate, ms []xdsconfig.SANMatcher) bool {
	for i := range ms {
		m := &ms[i]
		switch m.Type {
		case xdsconfig.SANURI:
			for _, u := range c.URIs {
				if m.Matcher.Match(u.String()) {
					return true
				}
			}
		case xdsconfig.SANDNS:
			for _, d := range c.DNSNames {
				if m.Matcher.Match(d) {
					return true
				}
			}
		case xdsconfig.SANEmail:
			for _, e := range c.EmailAddresses {
				if m.Matcher.Match(e) {
					return true
				}
			}
		case xdsconfig.SANIP:
			for _, ip := range c.IPAddresses {
				if m.Matcher.Match(ip.String()) {
					return true
				}
			}
		}
	}
	return false
}

func sanList(c *x509.Certificate) []string {
	var out []string
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	out = append(out, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

// transportFailure is an upstream TLS handshake failure (flag UF; its text is
// the access log's upstream_transport_failure_reason).
type transportFailure struct{ err error }

func (e *transportFailure) Error() string { return "TLS error: " + e.err.Error() }
func (e *transportFailure) Unwrap() error { return e.err }

// tlsUpstream hides an upstream *tls.Conn from net/http, which then speaks
// HTTP/1.1 or prior-knowledge HTTP/2 inside the TLS session as it would in
// cleartext; ALPN is negotiated for the peer's filter chain match only.
type tlsUpstream struct{ *tls.Conn }

// CloseWrite sends close_notify, for TCP proxying.
func (c tlsUpstream) CloseWrite() error { return c.Conn.CloseWrite() }

var _ net.Conn = tlsUpstream{}

// ownPrincipal is the URI SAN of the proxy's current certificate.
func (p *Proxy) ownPrincipal() string {
	if p.cfg.Identity == nil {
		return ""
	}
	cert, _ := p.cfg.Identity.Current()
	if cert == nil {
		return ""
	}
	leaf := cert.Leaf
	if leaf == nil && len(cert.Certificate) > 0 {
		leaf, _ = x509.ParseCertificate(cert.Certificate[0])
	}
	if leaf == nil || len(leaf.URIs) == 0 {
		return ""
	}
	if c := p.ownURI.Load(); c != nil && c.leaf == leaf {
		return c.uri
	}
	uri := leaf.URIs[0].String()
	p.ownURI.Store(&leafURI{leaf: leaf, uri: uri})
	return uri
}

// leafURI caches the URI SAN of the proxy's current certificate.
type leafURI struct {
	leaf *x509.Certificate
	uri  string
}

// xfcc is Envoy's x-forwarded-client-cert for a verified peer:
// By=<own URI SAN>;Hash=<sha256>;Subject="<subject>";URI=<peer URI SAN>.
func (p *Proxy) xfcc(pi *peerInfo) string {
	by := p.ownPrincipal()
	if c := pi.xfcc.Load(); c != nil && c.by == by {
		return c.value
	}
	var b strings.Builder
	if by != "" {
		b.WriteString("By=" + by + ";")
	}
	b.WriteString("Hash=" + pi.certHash)
	subj := ""
	if pi.cert != nil && len(pi.cert.Subject.Names) > 0 {
		subj = pi.cert.Subject.String()
	}
	b.WriteString(`;Subject="` + strings.ReplaceAll(subj, `"`, `\"`) + `"`)
	if pi.principal != "" {
		b.WriteString(";URI=" + pi.principal)
	}
	pi.xfcc.Store(&xfccValue{by: by, value: b.String()})
	return b.String()
}

// transportFailureReason is the upstream_transport_failure_reason of a
// failed connect: the TLS error, or "" for other failures.
func transportFailureReason(err error) string {
	var tf *transportFailure
	if errors.As(err, &tf) {
		return tf.err.Error()
	}
	return ""
}

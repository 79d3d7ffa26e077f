package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// GetCertificate is for tls.Config.GetCertificate: the current certificate.
func (a *Agent) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	cert, _ := a.Current()
	if cert == nil {
		return nil, errors.New("no workload certificate yet")
	}
	return cert, nil
}

// GetClientCertificate is for tls.Config.GetClientCertificate.
func (a *Agent) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return a.GetCertificate(nil)
}

// VerifyPeer is for tls.Config.VerifyPeerCertificate (with
// InsecureSkipVerify on clients and RequireAnyClientCert on servers): the peer
// must present an X.509 SVID of this workload's trust domain that verifies to
// the current bundle at the agent's clock.
func (a *Agent) VerifyPeer(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	_, err := a.verifyPeer(rawCerts, spiffeid.MatchAny())
	return err
}

// VerifyPeerID is like VerifyPeer but also requires the peer's SPIFFE ID to
// match (spiffeid.MatchID for a single expected identity).
func (a *Agent) VerifyPeerID(match spiffeid.Matcher) func([][]byte, [][]*x509.Certificate) error {
	return func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
		_, err := a.verifyPeer(rawCerts, match)
		return err
	}
}

// PeerID verifies rawCerts like VerifyPeer and returns the peer's SPIFFE ID.
func (a *Agent) PeerID(rawCerts [][]byte) (spiffeid.ID, error) {
	return a.verifyPeer(rawCerts, spiffeid.MatchAny())
}

func (a *Agent) verifyPeer(rawCerts [][]byte, match spiffeid.Matcher) (spiffeid.ID, error) {
	if len(rawCerts) == 0 {
		return spiffeid.ID{}, errors.New("peer presented no certificate")
	}
	id, _, err := x509svid.ParseAndVerify(rawCerts, a, x509svid.WithTime(a.clock.Now()))
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("peer certificate: %w", err)
	}
	if err := match(id); err != nil {
		return spiffeid.ID{}, fmt.Errorf("peer %s: %w", id, err)
	}
	return id, nil
}

// ServerConfig returns a TLS 1.3 server config that presents the current
// certificate and requires a client SVID of the trust domain (mesh mTLS).
func (a *Agent) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:            tls.VersionTLS13,
		GetCertificate:        a.GetCertificate,
		ClientAuth:            tls.RequireAnyClientCert,
		VerifyPeerCertificate: a.VerifyPeer,
	}
}

// ClientConfig returns a TLS 1.3 client config that presents the current
// certificate and requires the server's SPIFFE ID to match. Host name
// verification is replaced by the SPIFFE ID check, as in Istio.
func (a *Agent) ClientConfig(match spiffeid.Matcher) *tls.Config {
	return &tls.Config{
		MinVersion:            tls.VersionTLS13,
		GetClientCertificate:  a.GetClientCertificate,
		InsecureSkipVerify:    true, // verified by VerifyPeerCertificate against the SPIFFE bundle
		VerifyPeerCertificate: a.VerifyPeerID(match),
	}
}

package xdsconfig

import (
	"crypto/tls"
	"crypto/x509"
)

// SDS secret names the proxy serves from its workload identity (Istio's
// names); any other name is fetched from the control plane over ADS (a
// gateway's credentials, Secret).
const (
	// SecretDefault is the workload certificate chain and key.
	SecretDefault = "default"
	// SecretRootCA is the trust bundle.
	SecretRootCA = "ROOTCA"
)

// TLSContext is a checked DownstreamTlsContext (listener side) or
// UpstreamTlsContext (cluster side).
type TLSContext struct {
	// Upstream is true for an UpstreamTlsContext.
	Upstream bool
	// SNI is the server name an upstream connection sends.
	SNI string
	// MinVersion and MaxVersion are tls.VersionTLS1x (0: Go's default).
	MinVersion, MaxVersion uint16
	// ALPN are the protocols offered (client) or accepted in order (server).
	ALPN []string
	// CertFromIdentity: the certificate is SDS "default", served from the
	// proxy's workload identity at each handshake.
	CertFromIdentity bool
	// Cert is a certificate loaded from files (tls_certificates), or nil.
	Cert *tls.Certificate
	// CertSDS names the SDS secret (fetched over ADS) holding the
	// certificate, read at each handshake, so a new version serves the
	// next handshake; "" when unused.
	CertSDS string
	// CipherSuites are tls_params.cipher_suites as Go's IDs (TLS 1.2 and
	// below; TLS 1.3 suites are not configurable); nil: Go's defaults.
	// Names Go does not implement are left out (validation warns of them).
	CipherSuites []uint16
	// RootsFromIdentity: peers are verified against SDS "ROOTCA", the
	// proxy's trust bundle at each handshake.
	RootsFromIdentity bool
	// Roots are trusted CAs loaded from a file (trusted_ca), or nil.
	Roots *x509.CertPool
	// RootsSDS names the SDS secret (fetched over ADS) holding the trusted
	// CAs, read at each handshake; "" when unused.
	RootsSDS string
	// SANs are match_typed_subject_alt_names: when set, a peer certificate
	// must have a SAN that one of them matches.
	SANs []SANMatcher
	// RequireClientCert is require_client_certificate (server side).
	RequireClientCert bool
}

// Verifies reports whether peers are verified (a validation context exists).
func (t *TLSContext) Verifies() bool {
	return t.RootsFromIdentity || t.Roots != nil || t.RootsSDS != ""
}

// SDSNames returns the names of the SDS secrets fetched over ADS that t uses.
func (t *TLSContext) SDSNames() []string {
	var out []string
	for _, n := range []string{t.CertSDS, t.RootsSDS} {
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}

// Secret is a checked envoy.extensions.transport_sockets.tls.v3.Secret:
// exactly one of Cert and Roots is set.
type Secret struct {
	// Name is the SDS resource name.
	Name string
	// Cert is a tls_certificate: the chain with its private key, Leaf set.
	Cert *tls.Certificate
	// Roots is a validation_context's trusted_ca.
	Roots *x509.CertPool
}

// UsesIdentity reports whether the context needs the workload identity.
func (t *TLSContext) UsesIdentity() bool { return t.CertFromIdentity || t.RootsFromIdentity }

// SANType is the kind of subject alternative name a SANMatcher looks at.
type SANType int

// SAN types, as envoy SubjectAltNameMatcher.SanType.
const (
	SANDNS SANType = iota
	SANURI
	SANEmail
	SANIP
)

// SANMatcher matches one kind of SAN.
type SANMatcher struct {
	Type    SANType
	Matcher StringMatcher
}

// TransportSocketMatch is one cluster transport_socket_matches entry: hosts
// whose envoy.transport_socket_match metadata contains every Match pair use
// TLS (nil TLS: plaintext).
type TransportSocketMatch struct {
	Name  string
	Match map[string]string
	TLS   *TLSContext
}

package xdsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// UnmarshalSecret checks an SDS Secret: a tls_certificate (chain and key,
// inline) or a validation_context (trusted_ca, inline). Errors name the
// secret and field and never quote key material.
func UnmarshalSecret(s *tlsv3.Secret) (*Secret, error) {
	if err := checkFields(s, "secret", "name", "tls_certificate", "validation_context"); err != nil {
		return nil, fmt.Errorf("secret %q: %w", s.GetName(), err)
	}
	out := &Secret{Name: s.GetName()}
	if out.Name == "" {
		return nil, fmt.Errorf("secret: field name: empty")
	}
	switch t := s.GetType().(type) {
	case *tlsv3.Secret_TlsCertificate:
		p := "tls_certificate"
		if err := checkFields(t.TlsCertificate, p, "certificate_chain", "private_key"); err != nil {
			return nil, fmt.Errorf("secret %q: %w", out.Name, err)
		}
		chain, err := readDataSource(t.TlsCertificate.GetCertificateChain(), p+".certificate_chain")
		if err != nil {
			return nil, fmt.Errorf("secret %q: %w", out.Name, err)
		}
		key, err := readDataSource(t.TlsCertificate.GetPrivateKey(), p+".private_key")
		if err != nil {
			return nil, fmt.Errorf("secret %q: %w", out.Name, err)
		}
		cert, err := tls.X509KeyPair(chain, key)
		if err != nil {
			return nil, fmt.Errorf("secret %q: field %s: %w", out.Name, p, err)
		}
		out.Cert = &cert
	case *tlsv3.Secret_ValidationContext:
		p := "validation_context"
		if err := checkFields(t.ValidationContext, p, "trusted_ca"); err != nil {
			return nil, fmt.Errorf("secret %q: %w", out.Name, err)
		}
		pemData, err := readDataSource(t.ValidationContext.GetTrustedCa(), p+".trusted_ca")
		if err != nil {
			return nil, fmt.Errorf("secret %q: %w", out.Name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("secret %q: field %s.trusted_ca: no PEM certificate found", out.Name, p)
		}
		out.Roots = pool
	default:
		return nil, fmt.Errorf("secret %q: want tls_certificate or validation_context", out.Name)
	}
	return out, nil
}

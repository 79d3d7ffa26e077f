package ca

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// maxCSRSize bounds the PEM a caller may send.
const maxCSRSize = 64 << 10

// ErrInvalidRequest marks errors caused by the caller's request (bad CSR,
// TTL over the maximum); the gRPC service maps it to InvalidArgument.
var ErrInvalidRequest = errors.New("invalid certificate request")

// parseCSR turns the caller's PEM CSR into a checked request: one
// CERTIFICATE REQUEST block, a valid self-signature (proof of possession of
// the key) and an accepted key type. Everything else in the CSR (subject,
// SANs, extensions) is ignored: the CA decides the certificate's content.
func parseCSR(data []byte) (*x509.CertificateRequest, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: csr is empty", ErrInvalidRequest)
	}
	if len(data) > maxCSRSize {
		return nil, fmt.Errorf("%w: csr is %d bytes, more than %d", ErrInvalidRequest, len(data), maxCSRSize)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: csr is not PEM", ErrInvalidRequest)
	}
	if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("%w: csr PEM block is %q, want CERTIFICATE REQUEST", ErrInvalidRequest, block.Type)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: parse csr: %w", ErrInvalidRequest, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: csr signature: %w", ErrInvalidRequest, err)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, fmt.Errorf("%w: csr key: %w", ErrInvalidRequest, err)
	}
	return csr, nil
}

// checkPublicKey accepts ECDSA P-256/P-384, RSA 2048-8192 and Ed25519.
func checkPublicKey(pub any) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("ECDSA curve %s is not accepted (P-256 or P-384)", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < 2048 || n > 8192 {
			return fmt.Errorf("RSA key of %d bits is not accepted (2048 to 8192)", n)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("key type %T is not accepted", pub)
	}
	return nil
}

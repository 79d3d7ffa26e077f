package ca

import (
	"crypto/x509"
	"fmt"
	"path/filepath"
	"time"
)

// Root rotation in three steps on a cacerts directory, as Istio's plug-in CA
// procedure does it (docs/security.md, "Root rotation"). Each step validates
// the result before writing; files are replaced atomically one by one, and a
// watching control plane (DirWatcher) reloads once the directory validates.

// TrustParams are the parameters of TrustRoots.
type TrustParams struct {
	// Dir is the CA's cacerts directory.
	Dir string
	// Roots are the new roots to trust beside the current ones.
	Roots []*x509.Certificate
	// Now validates the result.
	Now time.Time
}

// TrustRoots is step 1: it appends p.Roots (those not yet there) to the
// directory's root-cert.pem, after the current roots. The signing
// certificate is unchanged. It returns the bundle written.
func TrustRoots(p TrustParams) ([]*x509.Certificate, error) {
	m, err := LoadMaterial(p.Dir, p.Now)
	if err != nil {
		return nil, err
	}
	if len(p.Roots) == 0 {
		return nil, fmt.Errorf("trust: no root certificate given")
	}
	for _, r := range p.Roots {
		if err := checkCA(r); err != nil {
			return nil, fmt.Errorf("trust: %w", err)
		}
		if !isSelfSigned(r) {
			return nil, fmt.Errorf("trust: %q is not a self-signed root", r.Subject)
		}
		if !containsCert(m.Roots, r) {
			m.Roots = append(m.Roots, r)
		}
	}
	if _, err := m.Validate(p.Now); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(p.Dir, RootCertFile), EncodeCertificates(m.Roots...), 0o644); err != nil {
		return nil, err
	}
	return m.Roots, nil
}

// SwitchParams are the parameters of SwitchSigner.
type SwitchParams struct {
	// Dir is the CA's cacerts directory.
	Dir string
	// From is a cacerts directory holding the new signing CA (a new root, or
	// an intermediate of it with its cert-chain.pem).
	From string
	// Now validates the result.
	Now time.Time
}

// SwitchSigner is step 2: the signing certificate, key and chain of p.From
// replace those of p.Dir, which keeps its whole bundle. The new signer's root
// must already be in the bundle (step 1), so workloads trust what it signs
// before it signs anything. It returns the new material.
func SwitchSigner(p SwitchParams) (*Material, error) {
	cur, err := LoadMaterial(p.Dir, p.Now)
	if err != nil {
		return nil, err
	}
	next, err := LoadMaterial(p.From, p.Now)
	if err != nil {
		return nil, err
	}
	verified, err := next.Validate(p.Now)
	if err != nil {
		return nil, err
	}
	root := verified[len(verified)-1]
	if !containsCert(cur.Roots, root) {
		return nil, fmt.Errorf("switch signer: the new signer's root %q is not in %s; trust it first (bowline ca rotate-root trust) and let workloads pick it up",
			root.Subject, filepath.Join(p.Dir, RootCertFile))
	}
	m := &Material{Cert: next.Cert, Key: next.Key, Chain: next.Chain, Roots: cur.Roots}
	if err := m.Write(WriteParams{Dir: p.Dir, Force: true, Now: p.Now}); err != nil {
		return nil, err
	}
	return m, nil
}

// RetireParams are the parameters of RetireRoots.
type RetireParams struct {
	// Dir is the CA's cacerts directory.
	Dir string
	// Now validates the result.
	Now time.Time
}

// RetireRoots is step 3: root-cert.pem keeps only the root the signing
// certificate chains to. It returns the roots removed (none when there was
// only one).
func RetireRoots(p RetireParams) ([]*x509.Certificate, error) {
	m, err := LoadMaterial(p.Dir, p.Now)
	if err != nil {
		return nil, err
	}
	verified, err := m.Validate(p.Now)
	if err != nil {
		return nil, err
	}
	root := verified[len(verified)-1]
	var removed []*x509.Certificate
	for _, r := range m.Roots {
		if !r.Equal(root) {
			removed = append(removed, r)
		}
	}
	if len(removed) == 0 {
		return nil, nil
	}
	if err := writeFileAtomic(filepath.Join(p.Dir, RootCertFile), EncodeCertificates(root), 0o644); err != nil {
		return nil, err
	}
	return removed, nil
}

func containsCert(certs []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range certs {
		if x.Equal(c) {
			return true
		}
	}
	return false
}

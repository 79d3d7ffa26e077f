package ca

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// InspectParams are the parameters of Inspect.
type InspectParams struct {
	// Path is a PEM file (a chain, leaf first) or a cacerts directory.
	Path string
	// RootFile optionally holds the roots to verify a file's chain against;
	// without it the self-signed certificates in the file are the roots.
	RootFile string
	// Now is the time validity is judged at.
	Now time.Time
}

// InspectedCert is one certificate of an inspected chain.
type InspectedCert struct {
	// Source names the file (and position) the certificate came from.
	Source string
	// Cert is the certificate.
	Cert *x509.Certificate
}

// Inspection is the result of Inspect: the certificates and whether the chain
// verifies. Problem is empty when it does.
type Inspection struct {
	Certs []InspectedCert
	// VerifiedTo is the root the chain verified to.
	VerifiedTo *x509.Certificate
	// Problem says why the chain does not verify.
	Problem string
}

// Inspect reads a certificate file or a cacerts directory and verifies it: a
// directory as New would load it (key matches, CA, chain to root-cert.pem), a
// file as a chain from its first certificate to a root. Errors are for
// unreadable input; a broken chain is reported in Inspection.Problem.
func Inspect(p InspectParams) (*Inspection, error) {
	fi, err := os.Stat(p.Path)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return inspectDir(p)
	}
	return inspectFile(p)
}

func inspectDir(p InspectParams) (*Inspection, error) {
	ins := &Inspection{}
	for _, name := range []string{CACertFile, CertChainFile, RootCertFile} {
		data, err := os.ReadFile(filepath.Join(p.Path, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		certs, err := ParseCertificates(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		for i, c := range certs {
			ins.Certs = append(ins.Certs, InspectedCert{Source: source(name, i, len(certs)), Cert: c})
		}
	}
	if len(ins.Certs) == 0 {
		return nil, fmt.Errorf("%s holds none of %s, %s, %s", p.Path, CACertFile, CertChainFile, RootCertFile)
	}
	m, err := LoadMaterial(p.Path, p.Now)
	if err != nil {
		ins.Problem = err.Error()
		return ins, nil
	}
	verified, _ := m.Validate(p.Now)
	ins.VerifiedTo = verified[len(verified)-1]
	return ins, nil
}

func inspectFile(p InspectParams) (*Inspection, error) {
	data, err := os.ReadFile(p.Path)
	if err != nil {
		return nil, err
	}
	name := filepath.Base(p.Path)
	certs, err := ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	ins := &Inspection{}
	for i, c := range certs {
		ins.Certs = append(ins.Certs, InspectedCert{Source: source(name, i, len(certs)), Cert: c})
	}
	roots := x509.NewCertPool()
	inter := x509.NewCertPool()
	nroots := 0
	for _, c := range certs[1:] {
		if isSelfSigned(c) {
			roots.AddCert(c)
			nroots++
		} else {
			inter.AddCert(c)
		}
	}
	if p.RootFile != "" {
		data, err := os.ReadFile(p.RootFile)
		if err != nil {
			return nil, err
		}
		extra, err := ParseCertificates(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Base(p.RootFile), err)
		}
		for _, c := range extra {
			roots.AddCert(c)
			nroots++
		}
	}
	first := certs[0]
	if nroots == 0 && isSelfSigned(first) {
		roots.AddCert(first)
		nroots++
	}
	if nroots == 0 {
		ins.Problem = fmt.Sprintf("no root certificate: the chain ends at %s, which is not self-signed (pass the root with --root)", CertName(certs[len(certs)-1]))
		return ins, nil
	}
	chains, err := first.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: p.Now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		ins.Problem = fmt.Sprintf("%s does not verify: %v", CertName(first), err)
		return ins, nil
	}
	ins.VerifiedTo = chains[0][len(chains[0])-1]
	return ins, nil
}

func source(name string, i, n int) string {
	if n == 1 {
		return name
	}
	return fmt.Sprintf("%s [%d/%d]", name, i+1, n)
}

// CertName names a certificate in messages: its subject, or its first URI SAN
// (the SPIFFE ID of a workload certificate, whose subject is empty).
func CertName(c *x509.Certificate) string {
	if s := c.Subject.String(); s != "" {
		return fmt.Sprintf("%q", s)
	}
	if len(c.URIs) > 0 {
		return c.URIs[0].String()
	}
	return fmt.Sprintf("serial %x", c.SerialNumber)
}

package ca

import (
	"crypto/tls"
	"fmt"
	"sync"
	"time"
)

// ServingCertificate is a control-plane serving certificate that renews
// itself when half its lifetime has passed, on the next handshake that asks
// for it. It needs no goroutine. Safe for concurrent use.
type ServingCertificate struct {
	ca    *CA
	hosts []string

	mu      sync.Mutex
	cur     *tls.Certificate
	renewAt time.Time
	// from is the signing material cur was issued with: after a Reload (a
	// new signing CA during a root rotation) the certificate is re-issued,
	// so the control plane never keeps presenting a chain to a retired root.
	from *Material
}

// NewServingCertificate returns a ServingCertificate for hosts; the first
// certificate is issued on the first call.
func (c *CA) NewServingCertificate(hosts []string) *ServingCertificate {
	return &ServingCertificate{ca: c, hosts: append([]string(nil), hosts...)}
}

// Certificate returns the current certificate, issuing a new one when none
// exists yet, half the current one's lifetime has passed, or the CA's
// material was reloaded since it was issued.
func (s *ServingCertificate) Certificate() (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.ca.cfg.Now()
	mat := s.ca.mat.Load()
	if s.cur != nil && now.Before(s.renewAt) && s.from == mat {
		return s.cur, nil
	}
	cert, err := s.ca.IssueServing(s.hosts)
	if err != nil {
		if s.cur != nil && now.Before(s.cur.Leaf.NotAfter) {
			return s.cur, nil // keep serving the valid one; try again next handshake
		}
		return nil, fmt.Errorf("issue serving certificate: %w", err)
	}
	s.cur = cert
	s.from = mat
	s.renewAt = now.Add(cert.Leaf.NotAfter.Sub(now) / 2)
	return cert, nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (s *ServingCertificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.Certificate()
}

// GetClientCertificate is for tls.Config.GetClientCertificate, when the
// control plane dials with its own identity.
func (s *ServingCertificate) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return s.Certificate()
}

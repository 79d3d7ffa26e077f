package proxy

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/credentials"

	"github.com/bowline-mesh/bowline/internal/identity"
)

// istiodPath is the SPIFFE path of the control plane's serving certificate
// (spiffe://<td>/ns/istio-system/sa/istiod), checked when xDS runs over mTLS.
const istiodPath = "/ns/istio-system/sa/istiod"

// newAgent builds the workload identity agent from the CA settings: the
// token (a bootstrap token, or a pod's projected ServiceAccount token) is in
// CATokenFile, never on the command line; it must be readable at start and
// is read again for every request, so a rotated token is used.
func newAgent(cfg Config) (*identity.Agent, error) {
	if cfg.CARootCert == "" {
		return nil, errors.New("ca: --ca-root-cert is required with --ca-address")
	}
	if cfg.CATokenFile != "" {
		if _, err := os.ReadFile(cfg.CATokenFile); err != nil {
			return nil, fmt.Errorf("ca token: %w", err)
		}
	}
	return identity.New(identity.Config{CAAddress: cfg.CAAddress, RootCertFile: cfg.CARootCert, TokenFile: cfg.CATokenFile,
		TrustDomain: cfg.TrustDomain, TTL: cfg.CertTTL, Logger: cfg.Logger})
}

// xdsCredentials are the mTLS credentials of the ADS stream: the workload
// certificate as client certificate, and the control plane verified by its
// SPIFFE ID (istiod's) against the trust bundle the CA returned.
func xdsCredentials(a *identity.Agent) credentials.TransportCredentials {
	c := a.ClientConfig(func(id spiffeid.ID) error {
		if id.Path() != istiodPath {
			return fmt.Errorf("control plane identity %s is not istiod's", id)
		}
		return nil
	})
	return credentials.NewTLS(c)
}

// runAgent runs the agent; it is started before the xDS client, which waits
// for the first certificate when xDS runs over mTLS.
func (p *Proxy) runAgent(ctx context.Context) error {
	if err := p.agent.Run(ctx); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	return nil
}

// waitIdentity blocks until the first certificate arrived (true) or ctx ends.
func (p *Proxy) waitIdentity(ctx context.Context) bool {
	if p.agent == nil {
		return true
	}
	select {
	case <-p.agent.Ready():
		return true
	case <-ctx.Done():
		return false
	}
}

// identityReady reports whether the proxy holds its first certificate (always
// true without a CA).
func (p *Proxy) identityReady() bool {
	if p.agent == nil {
		return true
	}
	select {
	case <-p.agent.Ready():
		return true
	default:
		return false
	}
}

// CertInfo describes one certificate in use, as the admin /certs endpoint
// reports it (bowline proxy-config secret reads it).
type CertInfo struct {
	// Name is the SDS secret name: "default" (workload certificate) or "ROOTCA".
	Name string `json:"name"`
	// Identity is the certificate's SPIFFE ID (URI SAN), or its subject.
	Identity string `json:"identity"`
	// Serial is the serial number in hex.
	Serial string `json:"serial"`
	// NotBefore and NotAfter bound the validity.
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
}

// Certs is the admin /certs document.
type Certs struct {
	// Certificates are the workload certificate then the trust bundle's roots;
	// empty when the proxy has no identity (or none yet).
	Certificates []CertInfo `json:"certificates"`
}

// certsHandler serves /certs: the certificates the proxy uses right now.
func (p *Proxy) certsHandler(w http.ResponseWriter, _ *http.Request) {
	out := Certs{Certificates: []CertInfo{}}
	if p.cfg.Identity != nil {
		cert, _ := p.cfg.Identity.Current()
		if cert != nil && len(cert.Certificate) > 0 {
			if leaf, err := x509.ParseCertificate(cert.Certificate[0]); err == nil {
				out.Certificates = append(out.Certificates, certInfo("default", leaf))
			}
		}
		if p.agent != nil {
			for _, r := range p.agent.Bundle() {
				out.Certificates = append(out.Certificates, certInfo("ROOTCA", r))
			}
		}
	}
	w.Header().Set("content-type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
}

func certInfo(name string, c *x509.Certificate) CertInfo {
	return CertInfo{Name: name, Identity: certPrincipal(c), Serial: fmt.Sprintf("%x", c.SerialNumber),
		NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC()}
}

package model

import (
	"fmt"
	"strings"

	"github.com/bowline-mesh/bowline/internal/config"
)

// CASuffix is Istio's convention for the trust bundle of credential NAME:
// Secret NAME-cacert, else the ca.crt/cacert key of Secret NAME.
const CASuffix = "-cacert"

// GatewayCredentialPrefix marks a credentialName that names its Secret's
// namespace, "kubernetes-gateway://NS/NAME" (Istio's form for Gateway API
// certificateRefs); a plain NAME is in the gateway workload's namespace.
const GatewayCredentialPrefix = "kubernetes-gateway://"

// CredentialRef locates the Secret a credentialName names for a gateway
// workload in namespace proxyNS.
func CredentialRef(credentialName, proxyNS string) (ns, name string) {
	if rest, ok := strings.CutPrefix(credentialName, GatewayCredentialPrefix); ok {
		if ns, name, ok := strings.Cut(rest, "/"); ok {
			return ns, name
		}
		return proxyNS, rest
	}
	return proxyNS, credentialName
}

// secretIndex keys Secrets by "namespace/name".
type secretIndex map[string]*config.Secret

func (s *Snapshot) secret(ns, name string) *config.Secret { return s.secrets[ns+"/"+name] }

// SecretCertificate returns the certificate chain and private key (PEM) of
// Secret ns/name (config.Secret.Certificate: Istio's keys). The error names
// the Secret and what is missing.
func (s *Snapshot) SecretCertificate(ns, name string) (cert, key []byte, err error) {
	sec := s.secret(ns, name)
	if sec == nil {
		return nil, nil, fmt.Errorf("secret %s/%s not found", ns, name)
	}
	if cert, key, err = sec.Certificate(); err != nil {
		return nil, nil, fmt.Errorf("secret %s/%s: %w", ns, name, err)
	}
	return cert, key, nil
}

// SecretCA returns the trust bundle (PEM) for credential ns/name: that of
// Secret NAME-cacert when it exists, else of Secret NAME (Istio's lookup).
func (s *Snapshot) SecretCA(ns, name string) ([]byte, error) {
	caName := name + CASuffix
	sec := s.secret(ns, caName)
	if sec == nil {
		caName = name
		if sec = s.secret(ns, name); sec == nil {
			return nil, fmt.Errorf("secret %s/%s not found (nor %s/%s%s)", ns, name, ns, name, CASuffix)
		}
	}
	ca, err := sec.TrustBundle()
	if err != nil {
		return nil, fmt.Errorf("secret %s/%s: %w", ns, caName, err)
	}
	return ca, nil
}

// credentialProblems lists Gateway servers whose credentialName no Secret
// of any namespace has (the gateway workload's namespace is only known per
// proxy): such a server is not served. `bowline analyze` checks the
// namespace too (IST0101).
func (s *Snapshot) credentialProblems() []string {
	names := map[string]bool{}
	for key := range s.secrets {
		_, name, _ := strings.Cut(key, "/")
		names[name] = true
	}
	var out []string
	for _, g := range s.gateways {
		for i, srv := range g.Servers {
			cn := srv.GetTls().GetCredentialName()
			if cn == "" {
				continue
			}
			ns, name := CredentialRef(cn, "")
			if ns != "" && s.secret(ns, name) != nil || ns == "" && names[name] {
				continue
			}
			out = append(out, fmt.Sprintf("Gateway %s/%s: spec.servers[%d].tls.credentialName: Secret %q not found; the server is not served",
				g.Namespace, g.Name, i, cn))
		}
	}
	return out
}

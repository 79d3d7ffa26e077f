package model

import (
	"fmt"
	"slices"
	"strings"

	"github.com/bowline-mesh/bowline/internal/config"
)

// Secret keys Istio reads TLS credentials from: a kubernetes.io/tls Secret's
// and a generic Secret's (pilot's credentials controller).
const (
	secretTLSCert     = "tls.crt"
	secretTLSKey      = "tls.key"
	secretTLSCA       = "ca.crt"
	secretGenericCert = "cert"
	secretGenericKey  = "key"
	secretGenericCA   = "cacert"
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
// Secret ns/name: keys cert/key of a generic Secret, else tls.crt/tls.key,
// as Istio reads them. The error says what is missing.
func (s *Snapshot) SecretCertificate(ns, name string) (cert, key []byte, err error) {
	sec := s.secret(ns, name)
	if sec == nil {
		return nil, nil, fmt.Errorf("secret %s/%s not found", ns, name)
	}
	for _, keys := range [][2]string{{secretGenericCert, secretGenericKey}, {secretTLSCert, secretTLSKey}} {
		if c, k := sec.Data[keys[0]], sec.Data[keys[1]]; len(c) > 0 && len(k) > 0 {
			return c, k, nil
		}
	}
	return nil, nil, fmt.Errorf("secret %s/%s has neither keys %q and %q nor %q and %q (found: %s)", ns, name,
		secretGenericCert, secretGenericKey, secretTLSCert, secretTLSKey, keyList(sec))
}

// SecretCA returns the trust bundle (PEM) for credential ns/name: key
// cacert or ca.crt of Secret NAME-cacert when it exists, else of Secret
// NAME (Istio's lookup).
func (s *Snapshot) SecretCA(ns, name string) ([]byte, error) {
	caName := name + CASuffix
	sec := s.secret(ns, caName)
	if sec == nil {
		caName = name
		if sec = s.secret(ns, name); sec == nil {
			return nil, fmt.Errorf("secret %s/%s not found (nor %s/%s%s)", ns, name, ns, name, CASuffix)
		}
	}
	for _, k := range []string{secretGenericCA, secretTLSCA} {
		if v := sec.Data[k]; len(v) > 0 {
			return v, nil
		}
	}
	return nil, fmt.Errorf("secret %s/%s has no key %q or %q (found: %s)", ns, caName, secretGenericCA, secretTLSCA, keyList(sec))
}

func keyList(sec *config.Secret) string {
	keys := make([]string, 0, len(sec.Data))
	for k := range sec.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if len(keys) == 0 {
		return "no keys"
	}
	return strings.Join(keys, ", ")
}

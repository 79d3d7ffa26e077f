package analysis

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/config"
)

// gatewaySecretAnalyzer reports Gateway servers whose credentialName names
// no Secret (IST0101) or a Secret without a usable certificate (IST0161),
// like Istio's gateway.SecretAnalyzer. The Secret is looked up in the
// gateway workload's namespace: from files there are no pods to find it by,
// so it is the root namespace, where Istio's (and `bowline up`'s) ingress
// and egress gateways run; a "kubernetes-gateway://NS/NAME" credential
// names its namespace. Mutual modes also need the CA (NAME-cacert, or
// ca.crt/cacert in NAME).
type gatewaySecretAnalyzer struct{}

var _ Analyzer = gatewaySecretAnalyzer{}

func (gatewaySecretAnalyzer) Name() string { return "gateway.SecretAnalyzer" }
func (gatewaySecretAnalyzer) Description() string {
	return "Checks a gateway's referenced secrets for correctness"
}

func (gatewaySecretAnalyzer) Analyze(c *Context) {
	for _, o := range c.Objects(config.KindGateway) {
		gw, ok := o.Spec.(*networking.Gateway)
		if !ok {
			continue
		}
		for i, s := range gw.GetServers() {
			t := s.GetTls()
			cn := t.GetCredentialName()
			if cn == "" || t.GetMode() == networking.ServerTLSSettings_PASSTHROUGH ||
				t.GetMode() == networking.ServerTLSSettings_AUTO_PASSTHROUGH || t.GetMode() == networking.ServerTLSSettings_ISTIO_MUTUAL {
				continue
			}
			path := fmt.Sprintf("spec.servers[%d].tls.credentialName", i)
			ns, name := c.opts.rootNamespace(), cn
			if rest, ok := strings.CutPrefix(cn, "kubernetes-gateway://"); ok {
				if n, nm, ok := strings.Cut(rest, "/"); ok {
					ns, name = n, nm
				} else {
					name = rest
				}
			}
			sec := c.Find(config.KindSecret, ns, name)
			if sec == nil {
				c.Report(ReferencedResourceNotFound, o, path, "credentialName", cn)
				continue
			}
			if !validCertificate(config.SecretOf(sec)) {
				c.Report(InvalidGatewayCredential, o, path, o.Meta.Name, o.Meta.Namespace)
				continue
			}
			if t.GetMode() != networking.ServerTLSSettings_MUTUAL && t.GetMode() != networking.ServerTLSSettings_OPTIONAL_MUTUAL {
				continue
			}
			ca := c.Find(config.KindSecret, ns, name+"-cacert")
			if ca == nil {
				ca = sec
			}
			if _, err := config.SecretOf(ca).TrustBundle(); err != nil {
				c.Report(ReferencedResourceNotFound, o, path, "CA certificate of credentialName", cn)
			}
		}
	}
}

// validCertificate reports whether s holds a certificate and key, the
// certificate PEM parsing as X.509.
func validCertificate(s *config.Secret) bool {
	if s == nil {
		return false
	}
	cert, _, err := s.Certificate()
	if err != nil {
		return false
	}
	b, _ := pem.Decode(cert)
	if b == nil || b.Type != "CERTIFICATE" {
		return false
	}
	_, err = x509.ParseCertificate(b.Bytes)
	return err == nil
}

package validation

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/config"
)

// validateGateway applies Istio's Gateway rules: a DNS-label name, at least
// one server, each with hosts, a port (number, protocol, unique name), a bind
// address and TLS settings that fit the protocol.
func validateGateway(obj *config.Object) []config.FieldError {
	gw, ok := obj.Spec.(*networking.Gateway)
	if !ok {
		return nil
	}
	f := &fieldErrors{}
	if !isDNSLabel(obj.Meta.Name) {
		f.errorf("metadata.name", "invalid gateway name %q: must be a DNS-1123 label (no dots)", obj.Meta.Name)
	}
	labelProblems(f, "spec.selector", gw.GetSelector())
	if len(gw.GetServers()) == 0 {
		f.errorf("spec.servers", "a gateway needs at least one server")
	}
	portNames := map[string]int{}
	for i, s := range gw.GetServers() {
		sp := indexPath("spec.servers", i)
		if s == nil {
			f.errorf(sp, "server must not be null")
			continue
		}
		serverProblems(f, sp, s)
		if s.GetPort() != nil {
			name := s.GetPort().GetName()
			if prev, dup := portNames[name]; dup && name != "" {
				f.errorf(fieldPath(sp, "port.name"), "duplicate port name %q, already used by servers[%d]", name, prev)
			} else {
				portNames[name] = i
			}
			if !parseProtocol(s.GetPort().GetProtocol()).isHTTP() && s.GetTls().GetHttpsRedirect() {
				f.warnf(fieldPath(sp, "tls.httpsRedirect"), "httpsRedirect only applies to HTTP servers")
			}
		}
	}
	return f.list
}

func serverProblems(f *fieldErrors, p string, s *networking.Server) {
	if len(s.GetHosts()) == 0 {
		f.errorf(fieldPath(p, "hosts"), "a server needs at least one host")
	}
	for i, h := range s.GetHosts() {
		namespaceSlashHostProblems(f, indexPath(fieldPath(p, "hosts"), i), h, true)
	}
	portOK := serverPortProblems(f, fieldPath(p, "port"), s.GetPort(), s.GetBind())
	if b := s.GetBind(); strings.HasPrefix(b, unixAddressPrefix) {
		f.reason(fieldPath(p, "bind"), unixAddressProblem(strings.TrimPrefix(b, unixAddressPrefix)))
		if s.GetPort() != nil && s.GetPort().GetNumber() != 0 {
			f.errorf(fieldPath(p, "port.number"), "port number must be 0 for a unix domain socket bind")
		}
	} else if b != "" && !isIP(b) {
		f.errorf(fieldPath(p, "bind"), "bind %q must be an IP address or unix://path", b)
	}
	serverTLSProblems(f, fieldPath(p, "tls"), s.GetTls())
	if !portOK {
		return
	}
	proto := parseProtocol(s.GetPort().GetProtocol())
	tls := s.GetTls()
	switch {
	case proto.isTLS() && tls == nil:
		f.errorf(fieldPath(p, "tls"), "%s servers need tls settings", proto)
	case !proto.isTLS() && tls != nil && proto.isHTTP():
		// Plain HTTP servers may only carry httpsRedirect.
		passthrough := tls.GetMode() == networking.ServerTLSSettings_PASSTHROUGH || tls.GetMode() == networking.ServerTLSSettings_AUTO_PASSTHROUGH
		if !passthrough || tls.GetCaCertificates() != "" || tls.GetPrivateKey() != "" || tls.GetServerCertificate() != "" {
			f.errorf(fieldPath(p, "tls"), "plain text HTTP servers cannot have tls settings other than httpsRedirect")
		}
	case !proto.isTLS() && tls != nil:
		f.errorf(fieldPath(p, "tls"), "%s servers cannot have tls settings (only HTTPS and TLS servers)", proto)
	}
}

// serverPortProblems checks a gateway server port; ok is false when the port
// is unusable (missing, unknown protocol or number out of range).
func serverPortProblems(f *fieldErrors, p string, port *networking.Port, bind string) (ok bool) {
	if port == nil {
		f.errorf(p, "port is required")
		return false
	}
	ok = true
	if parseProtocol(port.GetProtocol()) == protoUnsupported {
		if port.GetProtocol() == "" {
			f.errorf(fieldPath(p, "protocol"), "protocol is required (one of %s)", protocolList)
		} else {
			f.errorf(fieldPath(p, "protocol"), "%s", protocolProblem(port.GetProtocol()))
		}
		ok = false
	}
	if port.GetNumber() > 0 || !strings.HasPrefix(bind, unixAddressPrefix) {
		if msg := portProblem(int64(port.GetNumber())); msg != "" {
			f.errorf(fieldPath(p, "number"), "%s", msg)
			ok = false
		}
	}
	//nolint:staticcheck // targetPort is deprecated; it has no effect on gateways.
	if port.GetTargetPort() > 0 {
		f.errorf(fieldPath(p, "targetPort"), "targetPort has no effect on gateways")
	}
	if port.GetName() == "" {
		f.errorf(fieldPath(p, "name"), "port name is required")
	}
	return ok
}

// cipherSuites are the TLS cipher suites Envoy (BoringSSL) accepts.
var cipherSuites = map[string]bool{
	"ECDHE-ECDSA-AES128-GCM-SHA256": true, "ECDHE-RSA-AES128-GCM-SHA256": true,
	"ECDHE-ECDSA-AES256-GCM-SHA384": true, "ECDHE-RSA-AES256-GCM-SHA384": true,
	"ECDHE-ECDSA-CHACHA20-POLY1305": true, "ECDHE-RSA-CHACHA20-POLY1305": true,
	"ECDHE-PSK-CHACHA20-POLY1305": true, "ECDHE-ECDSA-AES128-SHA": true, "ECDHE-RSA-AES128-SHA": true,
	"ECDHE-PSK-AES128-CBC-SHA": true, "AES128-GCM-SHA256": true, "AES128-SHA": true,
	"ECDHE-ECDSA-AES256-SHA": true, "ECDHE-RSA-AES256-SHA": true, "ECDHE-PSK-AES256-CBC-SHA": true,
	"AES256-GCM-SHA384": true, "AES256-SHA": true, "PSK-AES128-CBC-SHA": true, "PSK-AES256-CBC-SHA": true,
	"DES-CBC3-SHA": true,
}

// FilterCipherSuites keeps the suites Envoy accepts (validation warned
// about the others), as istiod filters a Gateway's cipherSuites before
// sending them, so an unknown name costs a warning, not the listener.
func FilterCipherSuites(suites []string) []string {
	var out []string
	for _, s := range suites {
		if isValidCipherSuite(s) {
			out = append(out, s)
		}
	}
	return out
}

// isValidCipherSuite accepts a suite or an equal-preference group "[A|B]".
func isValidCipherSuite(s string) bool {
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		for _, c := range strings.Split(s[1:len(s)-1], "|") {
			if !cipherSuites[c] {
				return false
			}
		}
		return len(s) > 2
	}
	return cipherSuites[s]
}

// serverTLSProblems checks TLS settings of a gateway server or sidecar ingress listener.
func serverTLSProblems(f *fieldErrors, p string, t *networking.ServerTLSSettings) {
	if t == nil {
		return
	}
	if v := t.GetMinProtocolVersion(); (v == networking.ServerTLSSettings_TLSV1_0 || v == networking.ServerTLSSettings_TLSV1_1) && len(t.GetCipherSuites()) == 0 {
		f.warnf(fieldPath(p, "minProtocolVersion"), "TLS versions below 1.2 need cipherSuites: the default suites do not support them")
	}
	seen := map[string]bool{}
	for i, cs := range t.GetCipherSuites() {
		cp := indexPath(fieldPath(p, "cipherSuites"), i)
		switch {
		case !isValidCipherSuite(cs):
			f.warnf(cp, "unknown cipher suite %q is ignored", cs)
		case seen[cs]:
			f.warnf(cp, "duplicate cipher suite %q is ignored", cs)
		}
		seen[cs] = true
	}
	set := 0
	for _, b := range []bool{t.GetCredentialName() != "", len(t.GetCredentialNames()) > 0, len(t.GetTlsCertificates()) > 0} {
		if b {
			set++
		}
	}
	if set > 1 {
		f.errorf(p, "only one of credentialName, credentialNames and tlsCertificates may be set")
	}
	hasCredential := set > 0

	switch t.GetMode() {
	case networking.ServerTLSSettings_ISTIO_MUTUAL:
		// Istio's own certificates are used; nothing else may be given.
		for _, c := range []struct {
			name string
			set  bool
		}{
			{"serverCertificate", t.GetServerCertificate() != ""},
			{"privateKey", t.GetPrivateKey() != ""},
			{"caCertificates", t.GetCaCertificates() != ""},
			{"credentialName", t.GetCredentialName() != ""},
		} {
			if c.set {
				f.errorf(fieldPath(p, c.name), "ISTIO_MUTUAL mode cannot have %s", c.name)
			}
		}
		return
	case networking.ServerTLSSettings_PASSTHROUGH, networking.ServerTLSSettings_AUTO_PASSTHROUGH:
		if t.GetCaCrl() != "" || t.GetServerCertificate() != "" || t.GetPrivateKey() != "" || t.GetCaCertificates() != "" || hasCredential {
			f.warnf(fieldPath(p, "mode"), "%s mode does not terminate TLS, the certificates are ignored", t.GetMode())
		}
	case networking.ServerTLSSettings_SIMPLE:
		if !hasCredential {
			if t.GetServerCertificate() == "" {
				f.errorf(fieldPath(p, "serverCertificate"), "SIMPLE mode needs serverCertificate (or credentialName)")
			}
			if t.GetPrivateKey() == "" {
				f.errorf(fieldPath(p, "privateKey"), "SIMPLE mode needs privateKey (or credentialName)")
			}
		}
	case networking.ServerTLSSettings_MUTUAL, networking.ServerTLSSettings_OPTIONAL_MUTUAL:
		if !hasCredential {
			if t.GetServerCertificate() == "" {
				f.errorf(fieldPath(p, "serverCertificate"), "%s mode needs serverCertificate (or credentialName)", t.GetMode())
			}
			if t.GetPrivateKey() == "" {
				f.errorf(fieldPath(p, "privateKey"), "%s mode needs privateKey (or credentialName)", t.GetMode())
			}
			if t.GetCaCertificates() == "" {
				f.errorf(fieldPath(p, "caCertificates"), "%s mode needs caCertificates to verify clients (or credentialName)", t.GetMode())
			}
		}
	}
	if t.GetCaCrl() != "" {
		if hasCredential {
			f.errorf(fieldPath(p, "caCrl"), "caCrl cannot be used with credentialName: put the CRL in the credential")
		}
		if t.GetMode() == networking.ServerTLSSettings_SIMPLE {
			f.errorf(fieldPath(p, "caCrl"), "caCrl is not supported in SIMPLE mode")
		}
	}
}

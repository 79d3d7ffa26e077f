package xdsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	// Registered so that resources naming them decode (tls_inspector in
	// listener_filters, raw_buffer in transport_socket_matches).
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// Type URLs of the transport sockets the proxy implements.
const (
	typeUpstreamTLS   = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
	typeDownstreamTLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
	typeRawBuffer     = "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"
	socketRawBuffer   = "envoy.transport_sockets.raw_buffer"
)

// unmarshalTransportSocket converts a cluster (upstream) or filter chain
// (downstream) transport socket; nil means plaintext (raw_buffer).
func unmarshalTransportSocket(ts *corev3.TransportSocket, path string, upstream bool) (*TLSContext, error) {
	if ts == nil {
		return nil, nil
	}
	if err := checkFields(ts, path, "name", "typed_config"); err != nil {
		return nil, err
	}
	tc := ts.GetTypedConfig()
	if tc == nil {
		if ts.GetName() == socketRawBuffer {
			return nil, nil
		}
		return nil, fmt.Errorf("field %s.typed_config: missing", path)
	}
	switch tc.GetTypeUrl() {
	case typeRawBuffer:
		return nil, nil
	case typeUpstreamTLS:
		if !upstream {
			return nil, fmt.Errorf("field %s.typed_config: a listener needs a DownstreamTlsContext, got an UpstreamTlsContext", path)
		}
		u := &tlsv3.UpstreamTlsContext{}
		if err := tc.UnmarshalTo(u); err != nil {
			return nil, fmt.Errorf("field %s.typed_config: %w", path, err)
		}
		p := path + ".typed_config"
		if err := checkFields(u, p, "common_tls_context", "sni", "allow_renegotiation", "max_session_keys"); err != nil {
			return nil, err
		}
		out := &TLSContext{Upstream: true, SNI: u.GetSni()}
		if err := commonTLS(out, u.GetCommonTlsContext(), p+".common_tls_context"); err != nil {
			return nil, err
		}
		return out, nil
	case typeDownstreamTLS:
		if upstream {
			return nil, fmt.Errorf("field %s.typed_config: a cluster needs an UpstreamTlsContext, got a DownstreamTlsContext", path)
		}
		d := &tlsv3.DownstreamTlsContext{}
		if err := tc.UnmarshalTo(d); err != nil {
			return nil, fmt.Errorf("field %s.typed_config: %w", path, err)
		}
		p := path + ".typed_config"
		if err := checkFields(d, p, "common_tls_context", "require_client_certificate", "disable_stateless_session_resumption",
			"disable_stateful_session_resumption"); err != nil {
			return nil, err
		}
		out := &TLSContext{RequireClientCert: d.GetRequireClientCertificate().GetValue()}
		if err := commonTLS(out, d.GetCommonTlsContext(), p+".common_tls_context"); err != nil {
			return nil, err
		}
		if !out.CertFromIdentity && out.Cert == nil && out.CertSDS == "" {
			return nil, fmt.Errorf("field %s.common_tls_context: a server needs a certificate (tls_certificates or tls_certificate_sds_secret_configs)", p)
		}
		if out.RequireClientCert && !out.Verifies() {
			return nil, fmt.Errorf("field %s.require_client_certificate: needs a validation context", p)
		}
		return out, nil
	}
	return nil, fmt.Errorf("field %s.typed_config: transport socket %q unsupported", path, tc.GetTypeUrl())
}

func commonTLS(out *TLSContext, c *tlsv3.CommonTlsContext, path string) error {
	if c == nil {
		return nil
	}
	if err := checkFields(c, path, "tls_params", "tls_certificates", "tls_certificate_sds_secret_configs", "validation_context",
		"validation_context_sds_secret_config", "combined_validation_context", "alpn_protocols"); err != nil {
		return err
	}
	out.ALPN = c.GetAlpnProtocols()
	if tp := c.GetTlsParams(); tp != nil {
		if err := checkFields(tp, path+".tls_params", "tls_minimum_protocol_version", "tls_maximum_protocol_version",
			"cipher_suites", "ecdh_curves"); err != nil {
			return err
		}
		var err error
		if out.MinVersion, err = tlsVersion(tp.GetTlsMinimumProtocolVersion(), path+".tls_params.tls_minimum_protocol_version"); err != nil {
			return err
		}
		if out.MaxVersion, err = tlsVersion(tp.GetTlsMaximumProtocolVersion(), path+".tls_params.tls_maximum_protocol_version"); err != nil {
			return err
		}
		if out.MinVersion != 0 && out.MaxVersion != 0 && out.MinVersion > out.MaxVersion {
			return fmt.Errorf("field %s.tls_params: tls_minimum_protocol_version is above tls_maximum_protocol_version", path)
		}
		if out.CipherSuites, err = cipherSuiteIDs(tp.GetCipherSuites(), path+".tls_params.cipher_suites"); err != nil {
			return err
		}
	}
	certs, sds := c.GetTlsCertificates(), c.GetTlsCertificateSdsSecretConfigs()
	switch {
	case len(certs)+len(sds) > 1:
		return fmt.Errorf("field %s: one certificate is supported, got %d", path, len(certs)+len(sds))
	case len(sds) == 1:
		name, err := sdsRef(sds[0], fmt.Sprintf("%s.tls_certificate_sds_secret_configs[0]", path))
		if err != nil {
			return err
		}
		switch name {
		case SecretDefault:
			out.CertFromIdentity = true
		case SecretRootCA:
			return fmt.Errorf("field %s.tls_certificate_sds_secret_configs[0].name: %q is a trust bundle, not a certificate", path, name)
		default:
			out.CertSDS = name
		}
	case len(certs) == 1:
		p := path + ".tls_certificates[0]"
		if err := checkFields(certs[0], p, "certificate_chain", "private_key"); err != nil {
			return err
		}
		chain, err := readDataSource(certs[0].GetCertificateChain(), p+".certificate_chain")
		if err != nil {
			return err
		}
		key, err := readDataSource(certs[0].GetPrivateKey(), p+".private_key")
		if err != nil {
			return err
		}
		cert, err := tls.X509KeyPair(chain, key)
		if err != nil {
			return fmt.Errorf("field %s: %w", p, err)
		}
		out.Cert = &cert
	}
	var vc *tlsv3.CertificateValidationContext
	switch v := c.GetValidationContextType().(type) {
	case *tlsv3.CommonTlsContext_ValidationContext:
		vc = v.ValidationContext
	case *tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig:
		if err := rootsSDS(out, v.ValidationContextSdsSecretConfig, path+".validation_context_sds_secret_config"); err != nil {
			return err
		}
	case *tlsv3.CommonTlsContext_CombinedValidationContext:
		p := path + ".combined_validation_context"
		if err := rootsSDS(out, v.CombinedValidationContext.GetValidationContextSdsSecretConfig(), p+".validation_context_sds_secret_config"); err != nil {
			return err
		}
		vc = v.CombinedValidationContext.GetDefaultValidationContext()
		if vc.GetTrustedCa() != nil {
			return fmt.Errorf("field %s.default_validation_context.trusted_ca: unsupported beside an SDS validation context", p)
		}
	}
	if vc != nil {
		p := path + ".validation_context"
		if err := checkFields(vc, p, "trusted_ca", "match_typed_subject_alt_names", "match_subject_alt_names"); err != nil {
			return err
		}
		if vc.GetTrustedCa() != nil {
			pemData, err := readDataSource(vc.GetTrustedCa(), p+".trusted_ca")
			if err != nil {
				return err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pemData) {
				return fmt.Errorf("field %s.trusted_ca: no PEM certificate found", p)
			}
			out.Roots = pool
		}
		for i, m := range vc.GetMatchTypedSubjectAltNames() {
			mp := fmt.Sprintf("%s.match_typed_subject_alt_names[%d]", p, i)
			sm, err := convertStringMatcher(m.GetMatcher(), mp+".matcher")
			if err != nil {
				return err
			}
			var typ SANType
			switch m.GetSanType() {
			case tlsv3.SubjectAltNameMatcher_DNS:
				typ = SANDNS
			case tlsv3.SubjectAltNameMatcher_URI:
				typ = SANURI
			case tlsv3.SubjectAltNameMatcher_EMAIL:
				typ = SANEmail
			case tlsv3.SubjectAltNameMatcher_IP_ADDRESS:
				typ = SANIP
			default:
				return fmt.Errorf("field %s.san_type: %v unsupported", mp, m.GetSanType())
			}
			out.SANs = append(out.SANs, SANMatcher{Type: typ, Matcher: *sm})
		}
		for i, m := range vc.GetMatchSubjectAltNames() { // deprecated: any SAN type
			sm, err := convertStringMatcher(m, fmt.Sprintf("%s.match_subject_alt_names[%d]", p, i))
			if err != nil {
				return err
			}
			for _, typ := range []SANType{SANDNS, SANURI, SANEmail, SANIP} {
				out.SANs = append(out.SANs, SANMatcher{Type: typ, Matcher: *sm})
			}
		}
		if len(out.SANs) > 0 && !out.Verifies() {
			return fmt.Errorf("field %s: subject alt name matchers need trusted_ca or an SDS validation context", p)
		}
	}
	return nil
}

// sdsRef checks an SDS reference and returns the secret's name: "default"
// and "ROOTCA" are the workload identity, any other is fetched over ADS.
func sdsRef(s *tlsv3.SdsSecretConfig, path string) (string, error) {
	if s == nil {
		return "", fmt.Errorf("field %s: missing", path)
	}
	if err := checkFields(s, path, "name", "sds_config"); err != nil {
		return "", err
	}
	if s.GetName() == "" {
		return "", fmt.Errorf("field %s.name: empty", path)
	}
	if sc := s.GetSdsConfig(); sc != nil && sc.GetAds() == nil {
		return "", fmt.Errorf("field %s.sds_config: only ads is supported", path)
	}
	return s.GetName(), nil
}

// rootsSDS sets the trusted CAs of out from an SDS validation context.
func rootsSDS(out *TLSContext, s *tlsv3.SdsSecretConfig, path string) error {
	name, err := sdsRef(s, path)
	if err != nil {
		return err
	}
	switch name {
	case SecretRootCA:
		out.RootsFromIdentity = true
	case SecretDefault:
		return fmt.Errorf("field %s.name: %q is a certificate, not a trust bundle", path, name)
	default:
		out.RootsSDS = name
	}
	return nil
}

func readDataSource(d *corev3.DataSource, path string) ([]byte, error) {
	switch s := d.GetSpecifier().(type) {
	case *corev3.DataSource_Filename:
		b, err := os.ReadFile(s.Filename)
		if err != nil {
			return nil, fmt.Errorf("field %s.filename: %w", path, err)
		}
		return b, nil
	case *corev3.DataSource_InlineBytes:
		return s.InlineBytes, nil
	case *corev3.DataSource_InlineString:
		return []byte(s.InlineString), nil
	}
	return nil, fmt.Errorf("field %s: filename, inline_bytes or inline_string required", path)
}

func tlsVersion(v tlsv3.TlsParameters_TlsProtocol, path string) (uint16, error) {
	switch v {
	case tlsv3.TlsParameters_TLS_AUTO:
		return 0, nil
	case tlsv3.TlsParameters_TLSv1_0:
		return tls.VersionTLS10, nil
	case tlsv3.TlsParameters_TLSv1_1:
		return tls.VersionTLS11, nil
	case tlsv3.TlsParameters_TLSv1_2:
		return tls.VersionTLS12, nil
	case tlsv3.TlsParameters_TLSv1_3:
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("field %s: %v unsupported", path, v)
}

// cipherSuiteByName maps Envoy's (BoringSSL's) cipher suite names to Go's
// IDs, for the suites Go implements.
var cipherSuiteByName = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-RSA-AES128-GCM-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-RSA-AES256-GCM-SHA384":   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-CHACHA20-POLY1305": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-RSA-CHACHA20-POLY1305":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-ECDSA-AES128-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	"ECDHE-RSA-AES128-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	"ECDHE-ECDSA-AES256-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	"ECDHE-RSA-AES256-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	"AES128-GCM-SHA256":             tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	"AES256-GCM-SHA384":             tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	"AES128-SHA":                    tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	"AES256-SHA":                    tls.TLS_RSA_WITH_AES_256_CBC_SHA,
	"DES-CBC3-SHA":                  tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA,
}

// cipherSuiteIDs converts cipher suite names (and "[A|B]" equal-preference
// groups, flattened) to Go IDs, skipping the PSK suites, which Envoy knows
// and Go does not implement; nil for none. A name Envoy would not know is an
// error, as is a list left with no suite the proxy can offer (Go's defaults
// would be used in its place).
func cipherSuiteIDs(names []string, path string) ([]uint16, error) {
	var out []uint16
	for _, n := range names {
		for _, c := range strings.Split(strings.Trim(n, "[]"), "|") {
			id, ok := cipherSuiteByName[c]
			switch {
			case ok:
				if !slices.Contains(out, id) {
					out = append(out, id)
				}
			case !strings.Contains(c, "PSK-"):
				return nil, fmt.Errorf("field %s: unknown cipher suite %q", path, c)
			}
		}
	}
	if len(names) > 0 && len(out) == 0 {
		return nil, fmt.Errorf("field %s: none of %q can be offered (PSK suites are not implemented)", path, names)
	}
	return out, nil
}

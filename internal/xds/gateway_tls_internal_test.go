package xds

import (
	"slices"
	"testing"

	networking "istio.io/api/networking/v1alpha3"
)

// TestServerTLSParamsFiltersCipherSuites: a cipher suite Envoy does not
// know (validation warned about it) is left out, as istiod leaves it out,
// instead of reaching the proxy, which would refuse the listener for it.
func TestServerTLSParamsFiltersCipherSuites(t *testing.T) {
	p := serverTLSParams(&networking.ServerTLSSettings{
		CipherSuites: []string{"ECDHE-RSA-AES128-GCM-SHA256", "NOT-A-CIPHER", "[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]"}})
	if want := []string{"ECDHE-RSA-AES128-GCM-SHA256", "[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]"}; !slices.Equal(p.GetCipherSuites(), want) {
		t.Errorf("cipher_suites = %q, want %q", p.GetCipherSuites(), want)
	}
}

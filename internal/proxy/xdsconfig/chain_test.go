package xdsconfig

import "testing"

// TestChainForConnServerNames follows Envoy's filter_chain_match order for
// server_names: an exact name beats the longest "*.suffix", which beats a
// chain without names; a wildcard needs one more label.
func TestChainForConnServerNames(t *testing.T) {
	l := &Listener{TLSInspector: true, FilterChains: []FilterChain{
		{Name: "any-tls", TransportProtocol: TransportTLS},
		{Name: "wildcard", TransportProtocol: TransportTLS, ServerNames: []string{"*.example.com"}},
		{Name: "deeper", TransportProtocol: TransportTLS, ServerNames: []string{"*.api.example.com"}},
		{Name: "exact", TransportProtocol: TransportTLS, ServerNames: []string{"www.example.com", "other.org"}},
		{Name: "plain", TransportProtocol: TransportRawBuffer},
	}}
	for _, tc := range []struct{ sni, transport, want string }{
		{"www.example.com", TransportTLS, "exact"},
		{"WWW.Example.com", TransportTLS, "exact"},
		{"other.org", TransportTLS, "exact"},
		{"shop.example.com", TransportTLS, "wildcard"},
		{"v1.api.example.com", TransportTLS, "deeper"},
		{"example.com", TransportTLS, "any-tls"},
		{"", TransportTLS, "any-tls"},
		{"", TransportRawBuffer, "plain"},
	} {
		got := l.ChainForConn(443, tc.sni, tc.transport, nil)
		if got == nil || got.Name != tc.want {
			t.Errorf("ChainForConn(sni %q, %s) = %v, want %s", tc.sni, tc.transport, got, tc.want)
		}
	}
	strict := &Listener{TLSInspector: true, FilterChains: []FilterChain{{Name: "only", ServerNames: []string{"a.example.com"}}}}
	if got := strict.ChainForConn(443, "b.example.com", TransportTLS, nil); got != nil {
		t.Errorf("an SNI no chain names got chain %s", got.Name)
	}
}

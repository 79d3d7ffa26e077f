package proxy

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestForwardedForHeaders(t *testing.T) {
	cases := []struct {
		name, peer, xff   string
		wantXFF, external string
		internal          bool
	}{
		{"external peer, no xff", "203.0.113.7", "", "203.0.113.7", "203.0.113.7", false},
		{"external peer appended", "203.0.113.7", "192.0.2.1, 10.0.0.1", "192.0.2.1, 10.0.0.1,203.0.113.7", "203.0.113.7", false},
		{"RFC 1918 peer is internal", "10.1.2.3", "", "10.1.2.3", "", true},
		{"loopback peer is internal", "127.0.0.1", "192.0.2.1", "192.0.2.1,127.0.0.1", "", true},
		{"IPv4-mapped IPv6 peer", "::ffff:203.0.113.7", "", "203.0.113.7", "203.0.113.7", false},
		{"IPv6 ULA peer is internal", "fd00::1", "", "fd00::1", "", true},
		{"global IPv6 peer", "2001:db8::1", "", "2001:db8::1", "2001:db8::1", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{headerExternalAddress: {"6.6.6.6"}, headerEnvoyInternal: {"true"}}
			if tc.xff != "" {
				h[headerXFF] = []string{tc.xff}
			}
			forwardedFor(h, netip.MustParseAddr(tc.peer))
			if got := h.Get(headerXFF); got != tc.wantXFF {
				t.Errorf("x-forwarded-for %q, want %q", got, tc.wantXFF)
			}
			if got := h.Get(headerExternalAddress); got != tc.external {
				t.Errorf("x-envoy-external-address %q, want %q", got, tc.external)
			}
			if got := h.Get(headerEnvoyInternal) == "true"; got != tc.internal {
				t.Errorf("x-envoy-internal %v, want %v", got, tc.internal)
			}
		})
	}
}

package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestPprofLocalOnly(t *testing.T) {
	h := localOnly(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("profile")) }))
	for _, tc := range []struct {
		name, remote string
		want         int
	}{
		{"ipv4 loopback", "127.0.0.1:5555", http.StatusOK},
		{"ipv6 loopback", "[::1]:5555", http.StatusOK},
		{"mapped loopback", "[::ffff:127.0.0.1]:5555", http.StatusOK},
		{"remote", "10.1.2.3:5555", http.StatusForbidden},
		{"garbage", "pipe", http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/debug/pprof/", nil)
			r.RemoteAddr = tc.remote
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Errorf("%s: status %d, want %d (%s)", tc.remote, w.Code, tc.want, w.Body)
			}
		})
	}
}

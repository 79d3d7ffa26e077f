package proxy

import (
	"net/http/httptest"
	"testing"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

func TestRedirectURLKeepsTheRequestScheme(t *testing.T) {
	for _, tc := range []struct {
		name, downstream string
		rd               xdsconfig.Redirect
		want             string
	}{
		{"http, no scheme_redirect", "http", xdsconfig.Redirect{Path: "/x"}, "http://example.org/x"},
		{"https, no scheme_redirect", "https", xdsconfig.Redirect{Path: "/x"}, "https://example.org/x"},
		{"https, port 443 left out", "https", xdsconfig.Redirect{Port: 443}, "https://example.org/p"},
		{"https, port 8443", "https", xdsconfig.Redirect{Port: 8443}, "https://example.org:8443/p"},
		{"https to http by scheme_redirect", "https", xdsconfig.Redirect{Scheme: "http"}, "http://example.org/p"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/p", nil)
			r.Host = "example.org"
			if got := redirectURL(&tc.rd, &xdsconfig.RouteMatch{}, r, "/p", tc.downstream); got != tc.want {
				t.Errorf("location %q, want %q", got, tc.want)
			}
		})
	}
}

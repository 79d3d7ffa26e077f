package cli

import (
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// fakeAdmin serves body at /certs like a proxy's admin endpoint.
func fakeAdmin(t *testing.T, body string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/certs", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("content-type", "application/json")
		_, _ = w.Write([]byte(body))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: time.Second}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); wg.Wait() })
	return ln.Addr().String()
}

const certsJSON = `{
  "certificates": [
    {"name": "default", "identity": "spiffe://cluster.local/ns/default/sa/bookinfo-reviews", "serial": "5f3a9c0d12e4b7a8",
     "notBefore": "2026-05-01T11:59:00Z", "notAfter": "2026-05-02T12:00:00Z"},
    {"name": "ROOTCA", "identity": "CN=Bowline Root CA,O=cluster.local", "serial": "1",
     "notBefore": "2026-01-01T00:00:00Z", "notAfter": "2036-01-01T00:00:00Z"}
  ]
}`

func TestProxyConfigSecret(t *testing.T) {
	for _, tc := range []struct {
		name, body, at string
		code           int
	}{
		{"proxyconfig_secret", certsJSON, "2026-05-01T18:00:00Z", 0},
		{"proxyconfig_secret_expired", certsJSON, "2026-05-03T00:00:00Z", 0},
		{"proxyconfig_secret_none", `{"certificates": []}`, "2026-05-01T18:00:00Z", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakeAdmin(t, tc.body)
			out, errOut, code := run(t, "", "proxy-config", "secret", "--admin", addr, "--at", tc.at)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tc.code, errOut)
			}
			golden(t, tc.name, out+errOut)
		})
	}
	t.Run("unreachable admin", func(t *testing.T) {
		_, errOut, code := run(t, "", "proxy-config", "secret", "--admin", "127.0.0.1:1")
		if code != 1 || errOut == "" {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})
}

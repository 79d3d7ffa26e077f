package e2e

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// secretYAML is a Secret in istio-system (the gateway's namespace) of type
// typ with data (base64 encoded here, as kubectl writes it).
func secretYAML(name, typ string, data map[string][]byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Secret\nmetadata: {name: %s, namespace: istio-system}\ntype: %s\ndata:\n", name, typ)
	for _, k := range []string{"tls.crt", "tls.key", "ca.crt", "cert", "key", "cacert"} {
		if v, ok := data[k]; ok {
			fmt.Fprintf(&b, "  %s: %s\n", k, base64.StdEncoding.EncodeToString(v))
		}
	}
	return b.String()
}

// TestGatewayTLSEndToEnd drives HTTPS through the ingress gateway `bowline
// up` runs: SIMPLE servers with credentials from Secret YAML (a
// kubernetes.io/tls Secret and a generic one) chosen by SNI, a Secret
// rewritten while a connection stays up, MUTUAL and OPTIONAL_MUTUAL with
// the CA from Istio's NAME-cacert Secret, minProtocolVersion, and an HTTP
// server's httpsRedirect.
func TestGatewayTLSEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds binaries and runs processes")
	}
	bins := binaries(t)
	serverCA, clientCA, otherCA := newTestCA(t, "server-ca"), newTestCA(t, "client-ca"), newTestCA(t, "other-ca")
	certA := serverCA.issue(t, "a", "a.example.com")
	certB := serverCA.issue(t, "b", "b.example.com")
	certM := serverCA.issue(t, "m", "mutual.example.com", "optional.example.com", "modern.example.com")
	client := clientCA.issue(t, "client", "client.example.com")
	stranger := otherCA.issue(t, "stranger", "client.example.com")

	backend := startHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "host=%s proto=%s", r.Host, r.Header.Get("x-forwarded-proto"))
	}))
	redirectPort := freePort(t)
	dir := filepath.Join(t.TempDir(), "mesh")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "secrets.yaml"), strings.Join([]string{
		secretYAML("a-cred", "kubernetes.io/tls", map[string][]byte{"tls.crt": certA.certPEM, "tls.key": certA.keyPEM}),
		secretYAML("b-cred", "Opaque", map[string][]byte{"cert": certB.certPEM, "key": certB.keyPEM}),
		secretYAML("m-cred", "kubernetes.io/tls", map[string][]byte{"tls.crt": certM.certPEM, "tls.key": certM.keyPEM}),
		secretYAML("m-cred-cacert", "Opaque", map[string][]byte{"cacert": clientCA.pem}),
	}, "---\n"))
	writeFile(t, filepath.Join(dir, "gateway.yaml"), fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: backend, namespace: default}
spec:
  hosts: [backend.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8000, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: %d}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tls-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https-a, protocol: HTTPS}
    hosts: [a.example.com]
    tls: {mode: SIMPLE, credentialName: a-cred}
  - port: {number: 443, name: https-b, protocol: HTTPS}
    hosts: [b.example.com]
    tls: {mode: SIMPLE, credentialName: b-cred}
  - port: {number: 443, name: https-mutual, protocol: HTTPS}
    hosts: [mutual.example.com]
    tls: {mode: MUTUAL, credentialName: m-cred}
  - port: {number: 443, name: https-optional, protocol: HTTPS}
    hosts: [optional.example.com]
    tls: {mode: OPTIONAL_MUTUAL, credentialName: m-cred}
  - port: {number: 443, name: https-modern, protocol: HTTPS}
    hosts: [modern.example.com]
    tls: {mode: SIMPLE, credentialName: m-cred, minProtocolVersion: TLSV1_3}
  - port: {number: %d, name: http, protocol: HTTP}
    hosts: ["*.example.com"]
    tls: {httpsRedirect: true}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: backend, namespace: default}
spec:
  hosts: ["*.example.com"]
  gateways: [tls-gateway]
  http:
  - route: [{destination: {host: backend.default.svc.cluster.local, port: {number: 8000}}}]
`, backend, redirectPort))
	m := startUp(t, filepath.Join(bins, "bowline"), dir)
	addr := strings.TrimPrefix(strings.TrimPrefix(m.ingress, "http://"), "https://")
	trust := &tls.Config{RootCAs: serverCA.pool}

	get := func(sni string, cfg *tls.Config) (tlsResult, error) {
		return httpsGet(httpsClient(addr, sni, cfg), sni, "/hello")
	}
	waitUntil(t, "the HTTPS servers serving", func() bool {
		r, err := get("a.example.com", trust)
		return err == nil && r.status == 200
	})

	t.Run("SIMPLE: the certificate is chosen by SNI", func(t *testing.T) {
		for _, tc := range []struct {
			sni  string
			cert issued
		}{{"a.example.com", certA}, {"b.example.com", certB}} {
			r, err := get(tc.sni, trust)
			if err != nil {
				t.Fatalf("GET https://%s/hello: %v", tc.sni, err)
			}
			if r.status != 200 || r.body != "host="+tc.sni+" proto=https" {
				t.Errorf("GET https://%s/hello = %d %q, want 200 %q", tc.sni, r.status, r.body, "host="+tc.sni+" proto=https")
			}
			if r.peer.SerialNumber.Cmp(tc.cert.leaf.SerialNumber) != 0 {
				t.Errorf("SNI %s: gateway served certificate %v (serial %v), want serial %v", tc.sni, r.peer.DNSNames, r.peer.SerialNumber, tc.cert.leaf.SerialNumber)
			}
		}
		if _, err := get("unknown.example.org", &tls.Config{InsecureSkipVerify: true}); err == nil {
			t.Errorf("a handshake for an SNI no server has succeeded")
		}
	})

	t.Run("MUTUAL: a client certificate from the -cacert CA is required", func(t *testing.T) {
		if _, err := get("mutual.example.com", trust); err == nil {
			t.Errorf("MUTUAL server accepted a client without a certificate")
		}
		bad := trust.Clone()
		bad.Certificates = []tls.Certificate{stranger.tls}
		if _, err := get("mutual.example.com", bad); err == nil {
			t.Errorf("MUTUAL server accepted a certificate of another CA")
		}
		good := trust.Clone()
		good.Certificates = []tls.Certificate{client.tls}
		r, err := get("mutual.example.com", good)
		if err != nil || r.status != 200 {
			t.Fatalf("MUTUAL with the client certificate: %v %+v", err, r)
		}
	})

	t.Run("OPTIONAL_MUTUAL: no certificate passes, a bad one does not", func(t *testing.T) {
		if r, err := get("optional.example.com", trust); err != nil || r.status != 200 {
			t.Errorf("OPTIONAL_MUTUAL without a client certificate: %v %+v, want 200", err, r)
		}
		bad := trust.Clone()
		bad.Certificates = []tls.Certificate{stranger.tls}
		if _, err := get("optional.example.com", bad); err == nil {
			t.Errorf("OPTIONAL_MUTUAL accepted a certificate of another CA")
		}
		good := trust.Clone()
		good.Certificates = []tls.Certificate{client.tls}
		if r, err := get("optional.example.com", good); err != nil || r.status != 200 {
			t.Errorf("OPTIONAL_MUTUAL with the client certificate: %v %+v, want 200", err, r)
		}
	})

	t.Run("minProtocolVersion TLSV1_3 refuses TLS 1.2", func(t *testing.T) {
		old := trust.Clone()
		old.MaxVersion = tls.VersionTLS12
		if _, err := get("modern.example.com", old); err == nil {
			t.Errorf("a TLS 1.2 client was accepted by a TLSV1_3 server")
		}
		if _, err := get("a.example.com", old); err != nil {
			t.Errorf("a TLS 1.2 client was refused by a server without minProtocolVersion: %v", err)
		}
		if r, err := get("modern.example.com", trust); err != nil || r.status != 200 {
			t.Errorf("TLS 1.3 to the TLSV1_3 server: %v %+v", err, r)
		}
	})

	t.Run("httpsRedirect answers 301 to https", func(t *testing.T) {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/path?q=1", redirectPort), nil)
		req.Host = "a.example.com"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := "https://a.example.com/path?q=1"; resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("location") != want {
			t.Errorf("GET http://a.example.com/path?q=1 = %d location %q, want 301 %q", resp.StatusCode, resp.Header.Get("location"), want)
		}
	})

	t.Run("a rewritten Secret serves new handshakes, open connections keep going", func(t *testing.T) {
		kept := httpsClient(addr, "a.example.com", trust)
		first, err := httpsGet(kept, "a.example.com", "/before")
		if err != nil || first.status != 200 {
			t.Fatalf("first request: %v %+v", err, first)
		}
		renewed := serverCA.issue(t, "a-renewed", "a.example.com")
		writeFile(t, filepath.Join(dir, "secrets.yaml"), strings.Join([]string{
			secretYAML("a-cred", "kubernetes.io/tls", map[string][]byte{"tls.crt": renewed.certPEM, "tls.key": renewed.keyPEM}),
			secretYAML("b-cred", "Opaque", map[string][]byte{"cert": certB.certPEM, "key": certB.keyPEM}),
			secretYAML("m-cred", "kubernetes.io/tls", map[string][]byte{"tls.crt": certM.certPEM, "tls.key": certM.keyPEM}),
			secretYAML("m-cred-cacert", "Opaque", map[string][]byte{"cacert": clientCA.pem}),
		}, "---\n"))
		waitUntil(t, "new handshakes serving the renewed certificate", func() bool {
			r, err := get("a.example.com", trust)
			return err == nil && r.peer.SerialNumber.Cmp(renewed.leaf.SerialNumber) == 0
		})
		again, err := httpsGet(kept, "a.example.com", "/after")
		if err != nil || again.status != 200 {
			t.Fatalf("request on the connection opened before the change: %v %+v", err, again)
		}
		if !again.reused || again.peer.SerialNumber.Cmp(certA.leaf.SerialNumber) != 0 {
			t.Errorf("the request after the change went on a new connection (reused %v, serial %v): the open connection was dropped",
				again.reused, again.peer.SerialNumber)
		}
	})
}

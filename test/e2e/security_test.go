package e2e

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/internal/ca"
	"github.com/bowline-mesh/bowline/internal/proxy"
	"github.com/bowline-mesh/bowline/internal/proxy/xdsclient"
)

// This file drives AuthorizationPolicy and RequestAuthentication end to end:
// Istio YAML in a directory -> `bowline discovery` (in-process, xDS over mTLS
// with the CA on the xDS port) -> a real Bowline sidecar holding a workload
// certificate -> a real backend, asserting what a client sees.

const (
	jwtIssuer   = "https://issuer.bowline.test"
	jwtAudience = "web"
)

// jwtKeys are an RS256 and an ES256 signing key generated for the test.
type jwtKeys struct {
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
}

func newJWTKeys(t *testing.T) *jwtKeys {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &jwtKeys{rsa: rk, ec: ek}
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwks is the public key set, as an issuer would publish it.
func (k *jwtKeys) jwks() string {
	pt, _ := k.ec.PublicKey.Bytes() // 0x04 || X || Y
	set := map[string]any{"keys": []any{
		map[string]any{"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig",
			"n": b64url(k.rsa.N.Bytes()), "e": b64url(big.NewInt(int64(k.rsa.E)).Bytes())},
		map[string]any{"kty": "EC", "kid": "ec-1", "alg": "ES256", "use": "sig", "crv": "P-256",
			"x": b64url(pt[1:33]), "y": b64url(pt[33:65])},
	}}
	b, _ := json.Marshal(set)
	return string(b)
}

// token signs claims with RS256 or ES256; standard claims default to a
// valid token for sub "alice".
func (k *jwtKeys) token(t *testing.T, alg string, claims map[string]any) string {
	t.Helper()
	c := map[string]any{"iss": jwtIssuer, "sub": "alice", "aud": jwtAudience,
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	for key, v := range claims {
		if v == nil {
			delete(c, key)
			continue
		}
		c[key] = v
	}
	kid := "rsa-1"
	if alg == "ES256" {
		kid = "ec-1"
	}
	hdr, _ := json.Marshal(map[string]string{"alg": alg, "kid": kid, "typ": "JWT"})
	payload, _ := json.Marshal(c)
	signed := b64url(hdr) + "." + b64url(payload)
	sum := sha256.Sum256([]byte(signed))
	var sig []byte
	switch alg {
	case "RS256":
		s, err := rsa.SignPKCS1v15(rand.Reader, k.rsa, crypto.SHA256, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = s
	case "ES256":
		r, s, err := ecdsa.Sign(rand.Reader, k.ec, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	default:
		t.Fatalf("alg %s", alg)
	}
	return signed + "." + b64url(sig)
}

// unsigned is a token with header hdr, valid claims and no signature.
func (k *jwtKeys) unsigned(t *testing.T, hdr string) string {
	t.Helper()
	c, _ := json.Marshal(map[string]any{"iss": jwtIssuer, "sub": "alice", "aud": jwtAudience, "exp": time.Now().Add(time.Hour).Unix()})
	return b64url([]byte(hdr)) + "." + b64url(c) + "."
}

// hs256WithRSAKey is the algorithm-confusion token: HS256 with kid rsa-1,
// keyed with the RSA public key's PEM as the HMAC secret.
func (k *jwtKeys) hs256WithRSAKey(t *testing.T) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	hdr, _ := json.Marshal(map[string]string{"alg": "HS256", "kid": "rsa-1", "typ": "JWT"})
	c, _ := json.Marshal(map[string]any{"iss": jwtIssuer, "sub": "alice", "aud": jwtAudience, "exp": time.Now().Add(time.Hour).Unix()})
	signed := b64url(hdr) + "." + b64url(c)
	m := hmac.New(sha256.New, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	m.Write([]byte(signed))
	return signed + "." + b64url(m.Sum(nil))
}

// withKid re-signs tok's claims with RS256 under header kid.
func (k *jwtKeys) withKid(t *testing.T, tok, kid string) string {
	t.Helper()
	hdr, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": kid, "typ": "JWT"})
	signed := b64url(hdr) + "." + strings.Split(tok, ".")[1]
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k.rsa, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + b64url(sig)
}

// forged is signed's header and signature around other's payload.
func forged(signed, other string) string {
	a, b := strings.Split(signed, "."), strings.Split(other, ".")
	return a[0] + "." + b[1] + "." + a[2]
}

// startHTTPBackend answers every request with "backend <method> <request URI>".
func startHTTPBackend(t *testing.T) int {
	t.Helper()
	return startHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("content-type", "text/plain")
		fmt.Fprintf(w, "backend %s %s", r.Method, r.URL.RequestURI())
	}))
}

// syncWriter collects output written from other goroutines (access logs,
// a child process's stdout and stderr).
type syncWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// meshCP is an in-process control plane serving xDS over mTLS with the CA
// on the xDS port, as `bowline discovery --ca-dir` runs it.
type meshCP struct {
	xds, root string
	tokens    *ca.Tokens
	dir       string
}

func startSecureDiscovery(t *testing.T, configDir string) *meshCP {
	t.Helper()
	caDir := t.TempDir()
	c, err := ca.New(ca.Config{Dir: caDir})
	if err != nil {
		t.Fatal(err)
	}
	cp := &meshCP{root: filepath.Join(caDir, ca.RootCertFile), tokens: ca.NewTokens(), dir: t.TempDir()}
	cp.xds, _ = runDiscovery(t, secureDiscoveryConfig(configDir, c, cp.tokens))
	return cp
}

// tokenFile mints a token for default/sa into a 0600 file.
func (cp *meshCP) tokenFile(t *testing.T, sa string) string {
	t.Helper()
	path := filepath.Join(cp.dir, sa+".token")
	if err := os.WriteFile(path, []byte(cp.tokens.Mint("default", sa)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// sidecar is an in-process Bowline proxy fed by discovery.
type sidecar struct {
	p   *proxy.Proxy
	log *syncWriter
}

func startSidecar(t *testing.T, cp *meshCP, inbound map[uint32]uint32) *sidecar {
	t.Helper()
	sc := &sidecar{log: &syncWriter{}}
	sc.p = proxy.New(sidecarConfig(cp.xds, cp.root, cp.tokenFile(t, "web"), xdsclient.NodeInfo{Type: "sidecar", Namespace: "default", Workload: "web", ServiceAccount: "web",
		Labels: map[string]string{"app": "web"}, IPs: []string{"127.0.0.1"}, Inbound: inbound}, sc.log))
	sc.run(t, "web", 15*time.Second)
	return sc
}

// sidecarConfig is a sidecar fed by discovery at xds (also its CA), logging
// requests as JSON to log and retrying xDS quickly.
func sidecarConfig(xds, root, tokenFile string, node xdsclient.NodeInfo, log io.Writer) proxy.Config {
	return proxy.Config{
		Discovery: xds, CAAddress: xds, CARootCert: root, CATokenFile: tokenFile, Node: node,
		AdminAddress: "127.0.0.1:0", AccessLog: "json", AccessLogWriter: log, DrainDuration: 500 * time.Millisecond,
		XDSBackoffBase: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
	}
}

// run runs the sidecar's proxy until the test ends and waits up to within
// for it to be ready.
func (sc *sidecar) run(t *testing.T, name string, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sc.p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy %s: %v", name, err)
		}
	})
	deadline := time.Now().Add(within)
	for !sc.p.Ready() {
		if time.Now().After(deadline) {
			dump := sc.configDump(t)
			if i := strings.Index(dump, `"last_nack"`); i >= 0 {
				dump = dump[i:min(len(dump), i+600)]
			}
			t.Fatalf("sidecar %s not ready after %s: %.600s", name, within, dump)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// configDump returns the sidecar's /config_dump.
func (sc *sidecar) configDump(t *testing.T) string {
	t.Helper()
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Get("http://" + sc.p.AdminAddr() + "/config_dump")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// waitConfig waits until the sidecar's config contains marker.
func (sc *sidecar) waitConfig(t *testing.T, marker string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		dump := sc.configDump(t)
		if strings.Contains(dump, marker) {
			return
		}
		if time.Now().After(deadline) {
			last := ""
			if i := strings.Index(dump, `"last_nack"`); i >= 0 {
				last = dump[i:min(len(dump), i+400)]
			}
			t.Fatalf("config with %q not applied after 15s; %s", marker, last)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// waitNoConfig waits until the sidecar's config no longer contains marker.
func (sc *sidecar) waitNoConfig(t *testing.T, marker string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for strings.Contains(sc.configDump(t), marker) {
		if time.Now().After(deadline) {
			t.Fatalf("config still has %q after 15s", marker)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// rawRequest is one HTTP/1.1 request sent byte for byte (no client-side path cleaning).
type rawRequest struct {
	method, path, host string
	headers            map[string]string
	token              string
}

type rawResponse struct {
	status int
	body   string
	header http.Header
}

func sendRaw(t *testing.T, port int, rq rawRequest) rawResponse {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	method, host := rq.method, rq.host
	if method == "" {
		method = http.MethodGet
	}
	if host == "" {
		host = "web.default.svc.cluster.local"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, rq.path, host)
	for k, v := range rq.headers {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	if rq.token != "" {
		fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", rq.token)
	}
	if method == http.MethodPost || method == http.MethodPut {
		b.WriteString("Content-Length: 0\r\n")
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rq.path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return rawResponse{status: resp.StatusCode, body: string(body), header: resp.Header}
}

// check is one request of a case and what the client must see.
type check struct {
	rq     rawRequest
	status int
	// body is the exact body; for 200s the backend's "backend METHOD URI".
	body string
}

func allow(path string) check {
	return check{rq: rawRequest{path: path}, status: 200, body: "backend GET " + path}
}

func deny(path string) check {
	return check{rq: rawRequest{path: path}, status: 403, body: "RBAC: access denied"}
}

func withHdr(c check, k, v string) check {
	c.rq.headers = map[string]string{k: v}
	return c
}

func withMethod(c check, m string) check {
	c.rq.method = m
	if c.status == 200 {
		c.body = "backend " + m + " " + c.rq.path
	}
	return c
}

func withHost(c check, h string) check { c.rq.host = h; return c }

func withToken(c check, tok string) check { c.rq.token = tok; return c }

// policy is an AuthorizationPolicy for the web workload; NAME is replaced by a
// per-case name.
func policy(action, rules string) string {
	return fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: NAME, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  action: %s
%s`, action, rules)
}

// TestAuthorizationPolicyEndToEnd applies one AuthorizationPolicy set per case
// to a sidecar's inbound HTTP port and checks status and body of real requests.
func TestAuthorizationPolicyEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	keys := newJWTKeys(t)
	backend := startHTTPBackend(t)
	inPort := freePort(t)
	dir := t.TempDir()
	jwksJSON, _ := json.Marshal(keys.jwks())
	writeAtomic(t, filepath.Join(dir, "requestauthn.yaml"), fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: web-jwt, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  jwtRules:
  - issuer: %s
    audiences: [%s]
    jwks: %s
    outputPayloadToHeader: x-jwt-payload
`, jwtIssuer, jwtAudience, jwksJSON))
	sc := startSidecar(t, startSecureDiscovery(t, dir), map[uint32]uint32{uint32(inPort): uint32(backend)})
	sc.waitConfig(t, "envoy.filters.http.jwt_authn")

	alice := keys.token(t, "RS256", nil)
	bobES := keys.token(t, "ES256", map[string]any{"sub": "bob", "groups": []string{"admins", "dev"}})
	denyAdmin := policy("DENY", `  rules:
  - to: [{operation: {paths: ["/admin*"]}}]`)

	cases := []struct {
		name     string
		policies []string
		checks   []check
	}{
		{"no policy: everything allowed", nil, []check{allow("/"), allow("/admin")}},
		{"allow-nothing {}", []string{policy("ALLOW", "")}, []check{deny("/"), deny("/public")}},
		{"allow rules [{}] allows all", []string{policy("ALLOW", "  rules: [{}]")}, []check{allow("/"), allow("/x/y")}},
		{"deny rules [{}] denies all", []string{policy("DENY", "  rules: [{}]")}, []check{deny("/"), deny("/x")}},
		{"audit rules [{}] allows all", []string{policy("AUDIT", "  rules: [{}]")}, []check{allow("/"), allow("/y")}},
		{"allow exact path", []string{policy("ALLOW", `  rules:
  - to: [{operation: {paths: ["/public"]}}]`)}, []check{allow("/public"), allow("/public?q=1"), deny("/public/x"), deny("/private")}},
		{"allow prefix path", []string{policy("ALLOW", `  rules:
  - to: [{operation: {paths: ["/api/*"]}}]`)}, []check{allow("/api/v1"), allow("/api/"), deny("/api"), deny("/apix")}},
		{"allow suffix path", []string{policy("ALLOW", `  rules:
  - to: [{operation: {paths: ["*.png"]}}]`)}, []check{allow("/img/a.png"), deny("/img/a.jpg")}},
		{"allow presence path *", []string{policy("ALLOW", `  rules:
  - to: [{operation: {paths: ["*"]}}]`)}, []check{allow("/"), allow("/anything")}},
		{"allow path template {*}", []string{policy("ALLOW", `  rules:
  - to: [{operation: {paths: ["/books/{*}/reviews"]}}]`)}, []check{allow("/books/42/reviews"), deny("/books/42/x/reviews"), deny("/books/42")}},
		{"allow path template {**}", []string{policy("ALLOW", `  rules:
  - to: [{operation: {paths: ["/files/{**}"]}}]`)}, []check{allow("/files/a/b/c.txt"), deny("/other/a")}},
		{"allow methods", []string{policy("ALLOW", `  rules:
  - to: [{operation: {methods: ["GET", "HEAD"]}}]`)}, []check{allow("/m"), withMethod(deny("/m"), "POST"), withMethod(deny("/m"), "DELETE")}},
		{"deny methods", []string{policy("DENY", `  rules:
  - to: [{operation: {methods: ["DELETE"]}}]`)}, []check{allow("/m"), withMethod(allow("/m"), "POST"), withMethod(deny("/m"), "DELETE")}},
		{"allow hosts", []string{policy("ALLOW", `  rules:
  - to: [{operation: {hosts: ["web.example.com", "*.bowline.test"]}}]`)}, []check{
			withHost(allow("/h"), "web.example.com"), withHost(allow("/h"), "api.bowline.test"), withHost(deny("/h"), "other.example.com")}},
		{"allow ports", []string{policy("ALLOW", fmt.Sprintf(`  rules:
  - to: [{operation: {ports: ["%d"]}}]`, inPort))}, []check{allow("/p")}},
		{"allow other port denies", []string{policy("ALLOW", `  rules:
  - to: [{operation: {ports: ["1"]}}]`)}, []check{deny("/p")}},
		{"deny notPaths", []string{policy("DENY", `  rules:
  - to: [{operation: {notPaths: ["/public*"]}}]`)}, []check{allow("/public/a"), deny("/secret")}},
		{"allow notMethods", []string{policy("ALLOW", `  rules:
  - to: [{operation: {notMethods: ["DELETE"]}}]`)}, []check{allow("/n"), withMethod(deny("/n"), "DELETE")}},
		{"deny notHosts", []string{policy("DENY", `  rules:
  - to: [{operation: {notHosts: ["web.default.svc.cluster.local"]}}]`)}, []check{allow("/n"), withHost(deny("/n"), "evil.example.com")}},
		{"path and method in one operation (AND)", []string{policy("ALLOW", `  rules:
  - to: [{operation: {paths: ["/admin"], methods: ["GET"]}}]`)}, []check{allow("/admin"), withMethod(deny("/admin"), "POST"), deny("/other")}},
		{"two rules (OR)", []string{policy("ALLOW", `  rules:
  - to: [{operation: {paths: ["/a"]}}]
  - to: [{operation: {paths: ["/b"]}}]`)}, []check{allow("/a"), allow("/b"), deny("/c")}},
		{"when header", []string{policy("ALLOW", `  rules:
  - when: [{key: "request.headers[x-user]", values: ["alice", "bob*"]}]`)}, []check{
			withHdr(allow("/w"), "x-user", "alice"), withHdr(allow("/w"), "x-user", "bobby"), withHdr(deny("/w"), "x-user", "eve"), deny("/w")}},
		{"when notValues header", []string{policy("DENY", `  rules:
  - when: [{key: "request.headers[x-env]", notValues: ["prod"]}]`)}, []check{withHdr(allow("/w"), "x-env", "prod"), withHdr(deny("/w"), "x-env", "dev")}},
		{"from ipBlocks (source.ip)", []string{policy("ALLOW", `  rules:
  - from: [{source: {ipBlocks: ["127.0.0.0/8"]}}]`)}, []check{allow("/s")}},
		{"from notIpBlocks", []string{policy("DENY", `  rules:
  - from: [{source: {notIpBlocks: ["10.0.0.0/8"]}}]`)}, []check{deny("/s")}},
		{"when source.ip", []string{policy("DENY", `  rules:
  - when: [{key: source.ip, values: ["127.0.0.1"]}]`)}, []check{deny("/s")}},
		{"remoteIpBlocks via x-forwarded-for", []string{policy("DENY", `  rules:
  - from: [{source: {remoteIpBlocks: ["203.0.113.0/24"]}}]`)}, []check{
			allow("/r"), withHdr(deny("/r"), "x-forwarded-for", "203.0.113.7"), withHdr(allow("/r"), "x-forwarded-for", "198.51.100.1")}},
		{"when remote.ip", []string{policy("ALLOW", `  rules:
  - when: [{key: remote.ip, values: ["198.51.100.0/24"]}]`)}, []check{withHdr(allow("/r"), "x-forwarded-for", "198.51.100.9"), deny("/r")}},
		{"when destination.port", []string{policy("DENY", fmt.Sprintf(`  rules:
  - when: [{key: destination.port, values: ["%d"]}]`, inPort))}, []check{deny("/d")}},
		{"when destination.port other", []string{policy("DENY", `  rules:
  - when: [{key: destination.port, values: ["9"]}]`)}, []check{allow("/d")}},
		{"principals never match plaintext", []string{policy("ALLOW", `  rules:
  - from: [{source: {principals: ["*"]}}]`)}, []check{deny("/p")}},
		{"namespaces never match plaintext", []string{policy("DENY", `  rules:
  - from: [{source: {namespaces: ["default"]}}]`)}, []check{allow("/p")}},
		{"notPrincipals matches plaintext (no principal)", []string{policy("DENY", `  rules:
  - from: [{source: {notPrincipals: ["cluster.local/ns/default/sa/trusted"]}}]`)}, []check{deny("/p")}},
		{"requestPrincipals required", []string{policy("ALLOW", `  rules:
  - from: [{source: {requestPrincipals: ["*"]}}]`)}, []check{deny("/j"), withToken(allow("/j"), alice), withToken(allow("/j"), bobES)}},
		{"requestPrincipals exact", []string{policy("ALLOW", `  rules:
  - from: [{source: {requestPrincipals: ["`+jwtIssuer+`/alice"]}}]`)}, []check{withToken(allow("/j"), alice), withToken(deny("/j"), bobES), deny("/j")}},
		{"notRequestPrincipals", []string{policy("DENY", `  rules:
  - from: [{source: {notRequestPrincipals: ["*"]}}]`)}, []check{deny("/j"), withToken(allow("/j"), alice)}},
		{"when request.auth.claims", []string{policy("ALLOW", `  rules:
  - when: [{key: "request.auth.claims[groups]", values: ["admins"]}]`)}, []check{withToken(allow("/c"), bobES), withToken(deny("/c"), alice), deny("/c")}},
		{"when request.auth.audiences", []string{policy("ALLOW", `  rules:
  - when: [{key: request.auth.audiences, values: ["web"]}]`)}, []check{withToken(allow("/c"), alice), deny("/c")}},
		{"DENY wins over ALLOW", []string{denyAdmin, policy("ALLOW", "  rules: [{}]")}, []check{allow("/x"), deny("/admin")}},
		{"ALLOW across two policies (OR)", []string{
			policy("ALLOW", `  rules:
  - to: [{operation: {paths: ["/one"]}}]`),
			strings.Replace(policy("ALLOW", `  rules:
  - to: [{operation: {paths: ["/two"]}}]`), "name: NAME", "name: NAME-b", 1)}, []check{allow("/one"), allow("/two"), deny("/three")}},
		{"AUDIT does not change the decision", []string{policy("AUDIT", `  rules:
  - to: [{operation: {paths: ["/audited"]}}]`)}, []check{allow("/audited"), allow("/other")}},
		{"CUSTOM without provider denies what it selects", []string{policy("CUSTOM", `  provider: {name: ext-authz}
  rules:
  - to: [{operation: {paths: ["/ext/*"]}}]`)}, []check{deny("/ext/a"), allow("/plain")}},
		{"dry-run DENY only logged", []string{strings.Replace(policy("DENY", `  rules:
  - to: [{operation: {paths: ["/admin*"]}}]`), "namespace: default}", "namespace: default, annotations: {istio.io/dry-run: \"true\"}}", 1)},
			[]check{allow("/admin")}},
		{"normalization: /admin/../admin", []string{denyAdmin}, []check{deny("/admin/../admin"), allow("/public")}},
		{"normalization: /public/../admin", []string{denyAdmin}, []check{deny("/public/../admin")}},
		{"normalization: /./admin", []string{denyAdmin}, []check{deny("/./admin")}},
		{"normalization: //admin", []string{denyAdmin}, []check{deny("//admin")}},
		{"normalization: /%2e%2e/admin", []string{denyAdmin}, []check{deny("/%2e%2e/admin"), deny("/%2E%2E/admin")}},
		{"normalization: %2F", []string{denyAdmin}, []check{deny("/%2Fadmin"), deny("/public%2F..%2Fadmin")}},
		{"normalization: %61dmin", []string{denyAdmin}, []check{deny("/%61dmin")}},
		{"normalization: backslash", []string{denyAdmin}, []check{deny(`/public\..\admin`)}},
		{"normalized path goes upstream", []string{policy("ALLOW", "  rules: [{}]")}, []check{
			{rq: rawRequest{path: "/a/./b/../c//d?x=1"}, status: 200, body: "backend GET /a/c/d?x=1"}}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("c%02d", i)
			var docs []string
			for j, p := range tc.policies {
				// Distinct names: a second object of the same name would
				// replace the first, as a second kubectl apply does.
				n := name
				if j > 0 {
					n = fmt.Sprintf("%s-%d", name, j)
				}
				docs = append(docs, strings.ReplaceAll(p, "NAME", n))
			}
			writeAtomic(t, filepath.Join(dir, "policy.yaml"), strings.Join(docs, "\n---\n"))
			switch {
			case len(docs) > 0:
				sc.waitConfig(t, "policy["+name+"]")
			default:
				sc.waitNoConfig(t, "-policy[c")
			}
			for _, c := range tc.checks {
				got := sendRaw(t, inPort, c.rq)
				if got.status != c.status || got.body != c.body {
					t.Errorf("%s %s (host %q, headers %v, token %t): got %d %q, want %d %q", c.rq.method, c.rq.path, c.rq.host,
						c.rq.headers, c.rq.token != "", got.status, got.body, c.status, c.body)
				}
			}
		})
	}

	t.Run("access log: denial details, no response flag, audit mark", func(t *testing.T) {
		writeAtomic(t, filepath.Join(dir, "policy.yaml"), strings.ReplaceAll(denyAdmin, "NAME", "logged")+"\n---\n"+
			strings.ReplaceAll(policy("AUDIT", `  rules:
  - to: [{operation: {paths: ["/audited"]}}]`), "NAME", "audit"))
		sc.waitConfig(t, "policy[logged]")
		sc.waitConfig(t, "policy[audit]")
		if got := sendRaw(t, inPort, rawRequest{path: "/admin/x", headers: map[string]string{"x-request-id": "deny-1"}}); got.status != 403 {
			t.Fatalf("/admin/x: %d", got.status)
		}
		if got := sendRaw(t, inPort, rawRequest{path: "/audited", headers: map[string]string{"x-request-id": "audit-1"}}); got.status != 200 {
			t.Fatalf("/audited: %d", got.status)
		}
		deadline := time.Now().Add(5 * time.Second)
		var denied, audited map[string]any
		for (denied == nil || audited == nil) && time.Now().Before(deadline) {
			for _, line := range strings.Split(sc.log.String(), "\n") {
				var m map[string]any
				if json.Unmarshal([]byte(line), &m) != nil {
					continue
				}
				switch m["x_request_id"] {
				case "deny-1":
					denied = m
				case "audit-1":
					audited = m
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		if denied == nil || audited == nil {
			t.Fatalf("access log lines missing:\n%s", sc.log.String())
		}
		if denied["response_code"] != float64(403) || denied["response_flags"] != "-" ||
			denied["response_code_details"] != "rbac_access_denied_matched_policy[ns[default]-policy[logged]-rule[0]]" {
			t.Errorf("denied request logged as %v", denied)
		}
		if audited["response_code"] != float64(200) || audited["rbac_audit"] != true {
			t.Errorf("audited request logged as %v", audited)
		}
	})

	t.Run("jwt", func(t *testing.T) {
		writeAtomic(t, filepath.Join(dir, "policy.yaml"), strings.ReplaceAll(policy("ALLOW", `  rules:
  - to: [{operation: {paths: ["/open*"]}}]
  - from: [{source: {requestPrincipals: ["*"]}}]
    to: [{operation: {paths: ["/secure*"]}}]`), "NAME", "jwt"))
		sc.waitConfig(t, "policy[jwt]")
		realm := `Bearer realm="http://web.default.svc.cluster.local/secure", error="invalid_token"`
		for _, c := range []struct {
			name   string
			path   string
			token  string
			status int
			body   string
		}{
			{"valid RS256", "/secure", keys.token(t, "RS256", nil), 200, "backend GET /secure"},
			{"valid ES256", "/secure", keys.token(t, "ES256", nil), 200, "backend GET /secure"},
			{"expired", "/secure", keys.token(t, "RS256", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}), 401, "Jwt is expired"},
			{"expired ES256", "/secure", keys.token(t, "ES256", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}), 401, "Jwt is expired"},
			{"wrong issuer", "/secure", keys.token(t, "RS256", map[string]any{"iss": "https://evil.example"}), 401, "Jwt issuer is not configured"},
			{"wrong audience", "/secure", keys.token(t, "ES256", map[string]any{"aud": "other"}), 401, "Audiences in Jwt are not allowed"},
			{"bad signature", "/secure", forged(keys.token(t, "RS256", nil), keys.token(t, "RS256", map[string]any{"sub": "mallory"})), 401, "Jwt verification fails"},
			{"missing token, path needs a principal", "/secure", "", 403, "RBAC: access denied"},
			{"missing token, open path", "/open", "", 200, "backend GET /open"},
			{"invalid token on an open path is still refused", "/open", keys.token(t, "RS256", map[string]any{"aud": "other"}), 401, "Audiences in Jwt are not allowed"},
			{"alg none", "/secure", keys.unsigned(t, `{"alg":"none","kid":"rsa-1"}`), 401, "Jwt algorithm is not supported"},
			{"HS256 keyed with the RSA public key", "/secure", keys.hs256WithRSAKey(t), 401, "Jwks doesn't have key to match kid or alg from Jwt"},
			{"RS256 with the kid of the EC key", "/secure", keys.withKid(t, keys.token(t, "RS256", nil), "ec-1"), 401, "Jwks doesn't have key to match kid or alg from Jwt"},
			{"oversized token", "/secure", keys.token(t, "RS256", map[string]any{"pad": strings.Repeat("a", 64<<10)}), 431, "Request Header Fields Too Large"}, // the 60 KiB head limit answers before jwt_authn sees it
		} {
			got := sendRaw(t, inPort, rawRequest{path: c.path, token: c.token})
			if got.status != c.status || got.body != c.body {
				t.Errorf("%s: got %d %q, want %d %q", c.name, got.status, got.body, c.status, c.body)
			}
			if c.status == 401 && c.path == "/secure" && got.header.Get("www-authenticate") != realm {
				t.Errorf("%s: www-authenticate %q, want %q", c.name, got.header.Get("www-authenticate"), realm)
			}
		}
	})
}

// secretOf runs `bowline proxy-config secret` against a proxy's admin address
// and returns the workload certificate's identity and serial.
func secretOf(t *testing.T, bowline, admin string) (id, serial string, out string) {
	t.Helper()
	b, err := exec.Command(bowline, "proxy-config", "secret", "--admin", admin).CombinedOutput()
	if err != nil {
		t.Fatalf("proxy-config secret: %v\n%s", err, b)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "default" {
			return f[1], f[2], string(b)
		}
	}
	t.Fatalf("no default secret in:\n%s", b)
	return "", "", ""
}

// TestUpCertificatesRotate runs Bookinfo under `bowline up` with one-minute
// workload certificates: every proxy holds a SPIFFE certificate obtained with a
// token from a 0600 file (never on a command line), xDS runs over mTLS, and a
// sidecar's certificate rotates (new serial) while requests keep succeeding.
func TestUpCertificatesRotate(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds binaries and runs processes")
	}
	bins := binaries(t)
	bowline := filepath.Join(bins, "bowline")
	dir := bookinfoDir(t, bins)
	m := startUp(t, bowline, dir, "--workload-cert-ttl", "1m")
	stateData, err := os.ReadFile(filepath.Join(dir, ".bowline", "up.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Workloads []struct{ Name, Namespace, Admin string }
	}
	if err := json.Unmarshal(stateData, &st); err != nil {
		t.Fatal(err)
	}
	admins := map[string]string{}
	for _, w := range st.Workloads {
		admins[w.Name] = w.Admin
	}
	reviews := admins["reviews-v1-0"]
	if reviews == "" {
		t.Fatalf("reviews-v1-0 not in up.json: %s", stateData)
	}

	id, first, out := secretOf(t, bowline, reviews)
	if id != "spiffe://cluster.local/ns/default/sa/bookinfo-reviews" {
		t.Fatalf("reviews identity %q:\n%s", id, out)
	}
	if pid, _, _ := secretOf(t, bowline, admins["productpage-v1-0"]); pid != "spiffe://cluster.local/ns/default/sa/bookinfo-productpage" {
		t.Errorf("productpage identity %q", pid)
	}

	t.Run("tokens in 0600 files, never on a command line", func(t *testing.T) {
		files, _ := filepath.Glob(filepath.Join(dir, ".bowline", "tokens", "*.token"))
		if len(files) == 0 {
			t.Fatal("no token files")
		}
		for _, f := range files {
			info, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			if info.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v", f, info.Mode().Perm())
			}
			tok, _ := os.ReadFile(f)
			for _, p := range processesUnder(dir) {
				if strings.Contains(p, strings.TrimSpace(string(tok))) {
					t.Errorf("token of %s on a command line: %s", filepath.Base(f), p)
				}
			}
		}
	})

	t.Run("rotation keeps traffic flowing", func(t *testing.T) {
		deadline := time.Now().Add(90 * time.Second)
		requests, failures := 0, 0
		for {
			p := m.productPage(t, "")
			requests++
			if p.status != http.StatusOK || p.reviews == "" {
				failures++
				t.Errorf("request %d during rotation: status %d, reviews %q: %s", requests, p.status, p.reviews, excerpt(p.body))
			}
			if _, serial, _ := secretOf(t, bowline, reviews); serial != first {
				t.Logf("reviews-v1-0 certificate rotated (%s -> %s) after %d requests", first, serial, requests)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no rotation within 90s (serial still %s)", first)
			}
			time.Sleep(200 * time.Millisecond)
		}
		for range 20 {
			if p := m.productPage(t, ""); p.status != http.StatusOK || p.reviews == "" {
				t.Errorf("after rotation: status %d, reviews %q", p.status, p.reviews)
			}
		}
		if failures > 0 {
			t.Errorf("%d of %d requests failed during rotation", failures, requests)
		}
	})
}

// TestNetworkRBACEndToEnd: AuthorizationPolicy on a TCP port becomes network
// RBAC before tcp_proxy; a denied connection is closed without reaching the
// backend, an allowed one is proxied.
func TestNetworkRBACEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	echo := startTCPEcho(t)
	tcpIn := freePort(t)
	dir := t.TempDir()
	writeAtomic(t, filepath.Join(dir, "db.yaml"), fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  endpoints: [{address: 127.0.0.1, ports: {tcp: %d}, labels: {app: web}}]
`, tcpIn))
	sc := startSidecar(t, startSecureDiscovery(t, dir), map[uint32]uint32{uint32(tcpIn): uint32(echo)})
	roundTrip := func() (string, error) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", tcpIn), 5*time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "ping\n"); err != nil {
			return "", err
		}
		b := make([]byte, 5)
		_, err = io.ReadFull(c, b)
		return string(b), err
	}
	if got, err := roundTrip(); got != "ping\n" {
		t.Fatalf("no policy: got %q, %v", got, err)
	}
	for _, tc := range []struct {
		name, rules, action string
		pass                bool
	}{
		{"deny source 127.0.0.0/8", "  - from: [{source: {ipBlocks: [127.0.0.0/8]}}]", "DENY", false},
		{"allow source 10.0.0.0/8 only", "  - from: [{source: {ipBlocks: [10.0.0.0/8]}}]", "ALLOW", false},
		{"allow the port", fmt.Sprintf("  - to: [{operation: {ports: [\"%d\"]}}]", tcpIn), "ALLOW", true},
		{"deny principals: plaintext never matches", "  - from: [{source: {principals: [\"*\"]}}]", "DENY", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("tcp-%d", len(tc.name))
			writeAtomic(t, filepath.Join(dir, "policy.yaml"), strings.ReplaceAll(policy(tc.action, "  rules:\n"+tc.rules), "NAME", name))
			sc.waitConfig(t, "policy["+name+"]")
			got, err := roundTrip()
			if tc.pass && got != "ping\n" {
				t.Errorf("want the echo, got %q (%v)", got, err)
			}
			if !tc.pass && err == nil {
				t.Errorf("want the connection closed, got %q", got)
			}
		})
	}
	if !strings.Contains(sc.log.String(), `"response_code_details":"rbac_access_denied_matched_policy[`) {
		t.Errorf("no denied connection in the access log:\n%s", sc.log.String())
	}
}

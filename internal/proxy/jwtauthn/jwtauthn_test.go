package jwtauthn

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	jose "github.com/go-jose/go-jose/v4"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protojson"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

type signer struct {
	kid, alg string
	rsa      *rsa.PrivateKey
	ec       *ecdsa.PrivateKey
}

func newRSA(t *testing.T, kid, alg string) *signer {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{kid: kid, alg: alg, rsa: k}
}

func newEC(t *testing.T, kid string) *signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{kid: kid, alg: "ES256", ec: k}
}

func enc(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (s *signer) jwk() map[string]any {
	if s.rsa != nil {
		return map[string]any{"kty": "RSA", "kid": s.kid, "n": enc(s.rsa.N.Bytes()), "e": enc(big.NewInt(int64(s.rsa.E)).Bytes())}
	}
	b, _ := s.ec.PublicKey.Bytes()
	return map[string]any{"kty": "EC", "kid": s.kid, "crv": "P-256", "x": enc(b[1:33]), "y": enc(b[33:])}
}

func jwks(ss ...*signer) string {
	var keys []any
	for _, s := range ss {
		keys = append(keys, s.jwk())
	}
	b, _ := json.Marshal(map[string]any{"keys": keys})
	return string(b)
}

func (s *signer) sign(t *testing.T, claims map[string]any) string {
	h, _ := json.Marshal(map[string]any{"alg": s.alg, "kid": s.kid, "typ": "JWT"})
	p, _ := json.Marshal(claims)
	signed := enc(h) + "." + enc(p)
	sum := sha256.Sum256([]byte(signed))
	var sig []byte
	var err error
	switch {
	case s.ec != nil:
		var r, ss *big.Int
		r, ss, err = ecdsa.Sign(rand.Reader, s.ec, sum[:])
		sig = append(r.FillBytes(make([]byte, 32)), ss.FillBytes(make([]byte, 32))...)
	case s.alg == "PS256":
		sig, err = rsa.SignPSS(rand.Reader, s.rsa, crypto.SHA256, sum[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	default:
		sig, err = rsa.SignPKCS1v15(rand.Reader, s.rsa, crypto.SHA256, sum[:])
	}
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + enc(sig)
}

// istioConfig is what internal/xds generates for one jwtRule (origins-0).
func istioConfig(t *testing.T, provider string) *jwtv3.JwtAuthentication {
	cfg := &jwtv3.JwtAuthentication{}
	js := `{"providers":{"origins-0":` + provider + `},"rules":[{"match":{"prefix":"/"},"requires":{"requiresAny":{"requirements":[{"providerName":"origins-0"},{"allowMissing":{}}]}}}],"bypassCorsPreflight":true}`
	if err := protojson.Unmarshal([]byte(js), cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func claims(extra map[string]any) map[string]any {
	c := map[string]any{"iss": "https://issuer.example.com", "sub": "alice", "aud": "bookinfo", "azp": "web",
		"exp": float64(now.Add(time.Hour).Unix()), "iat": float64(now.Unix()), "scope": "read write"}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func TestVerify(t *testing.T) {
	rs := newRSA(t, "rsa1", "RS256")
	ps := newRSA(t, "ps1", "PS256")
	es := newEC(t, "ec1")
	other := newRSA(t, "rsa1", "RS256") // same kid, different key
	prov := `{"issuer":"https://issuer.example.com","audiences":["bookinfo"],"payloadInMetadata":"payload",` +
		`"normalizePayloadInMetadata":{"spaceDelimitedClaims":["scope"]},"localJwks":{"inlineString":` + mustJSON(jwks(rs, ps, es)) + `}}`
	f, err := New(istioConfig(t, prov), Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	bearer := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}
	cases := []struct {
		name   string
		set    func(*http.Request)
		status Status
		reason string
	}{
		{"missing", func(*http.Request) {}, Missing, ""},
		{"rs256 valid", bearer(rs.sign(t, claims(nil))), Valid, ""},
		{"es256 valid", bearer(es.sign(t, claims(nil))), Valid, ""},
		{"ps256 valid", bearer(ps.sign(t, claims(nil))), Valid, ""},
		{"query param default", func(r *http.Request) { r.URL.RawQuery = "access_token=" + rs.sign(t, claims(nil)) }, Valid, ""},
		{"expired", bearer(rs.sign(t, claims(map[string]any{"exp": float64(now.Add(-2 * time.Minute).Unix())}))), Invalid, ReasonExpired},
		{"expired within skew", bearer(rs.sign(t, claims(map[string]any{"exp": float64(now.Add(-30 * time.Second).Unix())}))), Valid, ""},
		{"not yet valid", bearer(rs.sign(t, claims(map[string]any{"nbf": float64(now.Add(2 * time.Minute).Unix())}))), Invalid, ReasonNotYetValid},
		{"nbf within skew", bearer(rs.sign(t, claims(map[string]any{"nbf": float64(now.Add(30 * time.Second).Unix())}))), Valid, ""},
		{"wrong issuer", bearer(rs.sign(t, claims(map[string]any{"iss": "https://evil.example.com"}))), Invalid, ReasonBadIssuer},
		{"wrong audience", bearer(rs.sign(t, claims(map[string]any{"aud": []any{"other"}}))), Invalid, ReasonBadAudience},
		{"audience in list", bearer(rs.sign(t, claims(map[string]any{"aud": []any{"x", "bookinfo"}}))), Valid, ""},
		{"bad signature", bearer(other.sign(t, claims(nil))), Invalid, ReasonBadSignature},
		{"tampered payload", bearer(tamper(rs.sign(t, claims(nil)))), Invalid, ReasonBadSignature},
		{"unknown kid", bearer((&signer{kid: "nope", alg: "RS256", rsa: rs.rsa}).sign(t, claims(nil))), Invalid, ReasonUnknownKid},
		{"alg none", bearer(enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(`{"iss":"https://issuer.example.com"}`)) + "."), Invalid, ReasonBadAlg},
		{"garbage", bearer("not-a-jwt"), Invalid, ReasonBadFormat},
		{"empty bearer is missing", bearer(""), Missing, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://svc/x", nil)
			tc.set(r)
			res := f.Verify(context.Background(), r)
			if res.Status != tc.status || res.Reason != tc.reason {
				t.Fatalf("got status %v reason %q, want %v %q", res.Status, res.Reason, tc.status, tc.reason)
			}
			if tc.status == Valid {
				if res.Principal != "https://issuer.example.com/alice" || res.Presenter != "web" || len(res.Audiences) == 0 {
					t.Fatalf("outputs: %+v", res)
				}
				pl := res.Metadata[FilterName]["payload"].(map[string]any)
				if got, ok := pl["scope"].([]any); !ok || len(got) != 2 {
					t.Fatalf("scope not split: %#v", pl["scope"])
				}
			}
		})
	}
}

func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	parts[1] = enc([]byte(`{"iss":"https://issuer.example.com","sub":"root","aud":"bookinfo"}`))
	return strings.Join(parts, ".")
}

func mustJSON(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestOutputsAndLocations(t *testing.T) {
	rs := newRSA(t, "k", "RS256")
	prov := `{"issuer":"iss","fromHeaders":[{"name":"x-jwt","valuePrefix":"Token "}],"fromCookies":["session"],` +
		`"forwardPayloadHeader":"x-jwt-payload","claimToHeaders":[{"headerName":"x-sub","claimName":"sub"},{"headerName":"x-team","claimName":"org.team"}],` +
		`"payloadInMetadata":"payload","localJwks":{"inlineString":` + mustJSON(jwks(rs)) + `}}`
	f, err := New(istioConfig(t, prov), Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	tok := rs.sign(t, map[string]any{"iss": "iss", "sub": "bob", "org": map[string]any{"team": "blue"}})
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Jwt", "Token "+tok)
	res := f.Verify(context.Background(), r)
	if res.Status != Valid {
		t.Fatalf("got %+v", res)
	}
	res.Apply(r.Header)
	if r.Header.Get("X-Jwt") != "" {
		t.Error("token header not stripped (forward is false)")
	}
	if r.Header.Get("X-Sub") != "bob" || r.Header.Get("X-Team") != "blue" {
		t.Errorf("claim headers: %v", r.Header)
	}
	if p, _ := base64.RawURLEncoding.DecodeString(r.Header.Get("X-Jwt-Payload")); !strings.Contains(string(p), `"sub":"bob"`) {
		t.Errorf("payload header %q", r.Header.Get("X-Jwt-Payload"))
	}
	// Authorization: Bearer is not a location of this provider.
	r = httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	if res := f.Verify(context.Background(), r); res.Status != Missing {
		t.Fatalf("default location used: %+v", res)
	}
	r = httptest.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: "session", Value: tok})
	if res := f.Verify(context.Background(), r); res.Status != Valid {
		t.Fatalf("cookie: %+v", res)
	}
}

// TestIstioMultipleProviders uses the shape internal/xds generates for two
// jwtRules sharing the Authorization header.
func TestIstioMultipleProviders(t *testing.T) {
	a, b := newRSA(t, "a", "RS256"), newEC(t, "b")
	js := `{"providers":{"origins-0":{"issuer":"A","localJwks":{"inlineString":` + mustJSON(jwks(a)) + `}},"origins-1":{"issuer":"B","localJwks":{"inlineString":` + mustJSON(jwks(b)) + `}}},` +
		`"rules":[{"match":{"prefix":"/"},"requires":{"requiresAny":{"requirements":[{"providerName":"origins-0"},{"providerName":"origins-1"},` +
		`{"requiresAll":{"requirements":[{"requiresAny":{"requirements":[{"providerName":"origins-0"},{"allowMissing":{}}]}},{"requiresAny":{"requirements":[{"providerName":"origins-1"},{"allowMissing":{}}]}}]}}]}}}]}`
	cfg := &jwtv3.JwtAuthentication{}
	if err := protojson.Unmarshal([]byte(js), cfg); err != nil {
		t.Fatal(err)
	}
	f, err := New(cfg, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		tok  string
		want Status
	}{
		"none":       {"", Missing},
		"issuer A":   {a.sign(t, map[string]any{"iss": "A", "sub": "x"}), Valid},
		"issuer B":   {b.sign(t, map[string]any{"iss": "B", "sub": "y"}), Valid},
		"issuer C":   {a.sign(t, map[string]any{"iss": "C", "sub": "x"}), Invalid},
		"A with B's": {b.sign(t, map[string]any{"iss": "A", "sub": "x"}), Invalid},
	} {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tc.tok != "" {
				r.Header.Set("Authorization", "Bearer "+tc.tok)
			}
			if res := f.Verify(context.Background(), r); res.Status != tc.want {
				t.Fatalf("got %+v", res)
			}
		})
	}
}

type fakeFetcher struct {
	body  atomic.Value // string
	fail  atomic.Bool
	calls atomic.Int32
}

func (f *fakeFetcher) FetchJWKS(_ context.Context, cluster, uri string, _ time.Duration) ([]byte, error) {
	f.calls.Add(1)
	if f.fail.Load() || cluster != "outbound|443||issuer.example.com" || uri != "https://issuer.example.com/jwks" {
		return nil, errors.New("fetch failed")
	}
	return []byte(f.body.Load().(string)), nil
}

func TestRemoteJWKS(t *testing.T) {
	k1, k2 := newRSA(t, "k1", "RS256"), newRSA(t, "k2", "RS256")
	ff := &fakeFetcher{}
	ff.body.Store(jwks(k1))
	clock := now
	prov := `{"issuer":"iss","remoteJwks":{"httpUri":{"uri":"https://issuer.example.com/jwks","cluster":"outbound|443||issuer.example.com","timeout":"5s"},"cacheDuration":"300s"}}`
	f, err := New(istioConfig(t, prov), Options{Fetcher: ff, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	verify := func(s *signer) Result {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+s.sign(t, map[string]any{"iss": "iss", "sub": "s", "exp": float64(clock.Add(time.Hour).Unix())}))
		return f.Verify(context.Background(), r)
	}
	if res := verify(k1); res.Status != Valid {
		t.Fatalf("first: %+v", res)
	}
	if res := verify(k1); res.Status != Valid || ff.calls.Load() != 1 {
		t.Fatalf("cached: %+v calls %d", res, ff.calls.Load())
	}
	// Key rotation: k2 is unknown until the cache expires.
	ff.body.Store(jwks(k2))
	if res := verify(k2); res.Status != Invalid || res.Reason != ReasonUnknownKid {
		t.Fatalf("before refresh: %+v", res)
	}
	clock = clock.Add(6 * time.Minute)
	if res := verify(k2); res.Status != Valid || ff.calls.Load() != 2 {
		t.Fatalf("after refresh: %+v calls %d", res, ff.calls.Load())
	}
	// Fail closed: an expired cache and a failing fetch reject tokens.
	clock = clock.Add(6 * time.Minute)
	ff.fail.Store(true)
	if res := verify(k2); res.Status != Invalid || res.Reason != ReasonJWKSFetch {
		t.Fatalf("fetch failure: %+v", res)
	}
	// A missing token still passes without any fetch.
	r := httptest.NewRequest("GET", "/", nil)
	if res := f.Verify(context.Background(), r); res.Status != Missing {
		t.Fatalf("missing: %+v", res)
	}
}

func TestNewRejects(t *testing.T) {
	for name, js := range map[string]string{
		"two rules":    `{"rules":[{"match":{"prefix":"/"}},{"match":{"prefix":"/a"}}]}`,
		"unknown prov": `{"rules":[{"match":{"prefix":"/"},"requires":{"providerName":"x"}}]}`,
		"no jwks":      `{"providers":{"p":{"issuer":"i"}}}`,
		"filter_state": `{"filterStateRules":{"name":"x"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			cfg := &jwtv3.JwtAuthentication{}
			if err := protojson.Unmarshal([]byte(js), cfg); err != nil {
				t.Fatal(err)
			}
			if _, err := New(cfg, Options{}); err == nil || !strings.Contains(err.Error(), "field") {
				t.Fatalf("got %v", err)
			}
		})
	}
}

// TestUnusableInlineJWKS: like Envoy, an inline JWKS without a usable key is
// accepted (the control plane sends {"keys":[]} when it cannot resolve a
// rule's keys) and every token of that provider then fails; a request
// without a token still passes.
func TestUnusableInlineJWKS(t *testing.T) {
	for _, set := range []string{`{"keys":[]}`, `{}`} {
		js, _ := json.Marshal(set)
		cfg := istioConfig(t, `{"issuer":"https://issuer.example.com","localJwks":{"inlineString":`+string(js)+`}}`)
		f, err := New(cfg, Options{Now: func() time.Time { return now }})
		if err != nil {
			t.Fatalf("%s: New: %v", set, err)
		}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if res := f.Verify(context.Background(), r); res.Status != Missing {
			t.Errorf("%s: no token: status %v, want Missing", set, res.Status)
		}
		r.Header.Set("Authorization", "Bearer "+newEC(t, "k").sign(t, claims(nil)))
		if res := f.Verify(context.Background(), r); res.Status != Invalid || res.Reason != ReasonUnknownKid {
			t.Errorf("%s: token: %v %q, want Invalid %q", set, res.Status, res.Reason, ReasonUnknownKid)
		}
	}
}

// hmacToken signs header.payload with HMAC-SHA256 under secret.
func hmacToken(header, payload map[string]any, secret []byte) string {
	h, _ := json.Marshal(header)
	p, _ := json.Marshal(payload)
	signed := enc(h) + "." + enc(p)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(signed))
	return signed + "." + enc(m.Sum(nil))
}

// joseToken signs claims with go-jose (algorithms the test signer lacks).
func joseToken(t *testing.T, alg jose.SignatureAlgorithm, kid string, k any, c map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: k}, (&jose.SignerOptions{}).WithHeader("kid", kid).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := json.Marshal(c)
	obj, err := s.Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestVerifyHostile: tokens built to get past a verifier: no algorithm,
// algorithm confusion (HS256 keyed with the RSA public key), a kid naming a
// key of another type, a curve that does not fit the algorithm, and absurd
// sizes are all 401 with Envoy's texts; EdDSA, HS256 with an oct key and
// ES384 verify as Envoy's jwt_verify_lib does.
func TestVerifyHostile(t *testing.T) {
	rs := newRSA(t, "rsa1", "RS256")
	es := newEC(t, "ec1")
	es384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("0123456789abcdef0123456789abcdef")
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: mustPKIX(t, &rs.rsa.PublicKey)})
	withAlg := func(m map[string]any, alg string) map[string]any { m["alg"] = alg; return m }
	set := func(keys ...map[string]any) string {
		b, _ := json.Marshal(map[string]any{"keys": keys})
		return string(b)
	}
	p384 := es384.PublicKey.Bytes
	b384, _ := p384()
	keys := set(rs.jwk(), es.jwk(),
		map[string]any{"kty": "EC", "kid": "ec384", "crv": "P-384", "x": enc(b384[1:49]), "y": enc(b384[49:])},
		map[string]any{"kty": "OKP", "kid": "ed1", "crv": "Ed25519", "x": enc(edPub)},
		map[string]any{"kty": "oct", "kid": "hs1", "alg": "HS256", "k": enc(secret)})
	strictKeys := set(withAlg(rs.jwk(), "RS256"), withAlg(es.jwk(), "ES256"))
	newFilter := func(jwksJSON string) *Filter {
		prov := `{"issuer":"https://issuer.example.com","localJwks":{"inlineString":` + mustJSON(jwksJSON) + `}}`
		f, err := New(istioConfig(t, prov), Options{Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	f, strict := newFilter(keys), newFilter(strictKeys)
	c := claims(nil)
	huge := claims(map[string]any{"pad": strings.Repeat("a", MaxTokenBytes)})
	cases := []struct {
		name   string
		f      *Filter
		token  string
		status Status
		reason string
	}{
		{"alg none with a signature", f, enc([]byte(`{"alg":"none","kid":"rsa1"}`)) + "." + enc(mustMarshal(c)) + "." + enc([]byte("x")), Invalid, ReasonBadAlg},
		{"alg None", f, enc([]byte(`{"alg":"None"}`)) + "." + enc(mustMarshal(c)) + ".", Invalid, ReasonBadAlg},
		{"alg missing", f, enc([]byte(`{"kid":"rsa1"}`)) + "." + enc(mustMarshal(c)) + ".c2ln", Invalid, ReasonBadAlg},
		{"HS256 keyed with the RSA public key (PEM)", f, hmacToken(map[string]any{"alg": "HS256", "kid": "rsa1"}, c, rsaPEM), Invalid, ReasonBadSignature},
		{"HS256 keyed with the RSA modulus", f, hmacToken(map[string]any{"alg": "HS256", "kid": "rsa1"}, c, rs.rsa.N.Bytes()), Invalid, ReasonBadSignature},
		{"HS256 keyed with the RSA key, key with alg", strict, hmacToken(map[string]any{"alg": "HS256", "kid": "rsa1"}, c, rsaPEM), Invalid, ReasonUnknownKid},
		{"HS256 without kid against RSA and EC keys", strict, hmacToken(map[string]any{"alg": "HS256"}, c, rsaPEM), Invalid, ReasonUnknownKid},
		{"RS256 kid naming the EC key", f, (&signer{kid: "ec1", alg: "RS256", rsa: rs.rsa}).sign(t, c), Invalid, ReasonBadSignature},
		{"RS256 kid naming the EC key, key with alg", strict, (&signer{kid: "ec1", alg: "RS256", rsa: rs.rsa}).sign(t, c), Invalid, ReasonUnknownKid},
		{"ES384 kid naming the P-256 key", f, joseToken(t, jose.ES384, "ec1", es384, c), Invalid, ReasonBadSignature},
		{"EdDSA kid naming the oct key", f, joseToken(t, jose.EdDSA, "hs1", edPriv, c), Invalid, ReasonUnknownKid},
		{"oversized token", f, rs.sign(t, huge), Invalid, ReasonTooLarge},
		{"four sections", f, rs.sign(t, c) + ".x", Invalid, ReasonBadFormat},
		{"bad base64 header", f, "!!!." + enc(mustMarshal(c)) + ".x", Invalid, ReasonBadFormat},
		{"payload not JSON", f, hmacTokenRaw(t, "hs1", []byte("not json"), secret), Invalid, ReasonBadPayloadJSON},

		{"ES384 valid", f, joseToken(t, jose.ES384, "ec384", es384, c), Valid, ""},
		{"EdDSA valid", f, joseToken(t, jose.EdDSA, "ed1", edPriv, c), Valid, ""},
		{"HS256 with the oct key valid", f, hmacToken(map[string]any{"alg": "HS256", "kid": "hs1"}, c, secret), Valid, ""},
		{"RS256 valid under a strict JWKS", strict, rs.sign(t, c), Valid, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://svc/x", nil)
			r.Header.Set("Authorization", "Bearer "+tc.token)
			res := tc.f.Verify(context.Background(), r)
			if res.Status != tc.status || res.Reason != tc.reason {
				t.Fatalf("got status %v reason %q, want %v %q", res.Status, res.Reason, tc.status, tc.reason)
			}
		})
	}
}

// TestJWKSKidless: a JWKS key without kid is tried for a token with a kid,
// as jwt_verify_lib does.
func TestJWKSKidless(t *testing.T) {
	rs := newRSA(t, "", "RS256")
	prov := `{"issuer":"https://issuer.example.com","localJwks":{"inlineString":` + mustJSON(jwks(rs)) + `}}`
	f, err := New(istioConfig(t, prov), Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+(&signer{kid: "any", alg: "RS256", rsa: rs.rsa}).sign(t, claims(nil)))
	if res := f.Verify(context.Background(), r); res.Status != Valid {
		t.Fatalf("got %+v", res)
	}
}

// TestParseJWKSSkipsBadKeys: keys go-jose refuses (a point off the curve,
// unknown kty, encryption keys) are skipped one by one.
func TestParseJWKSSkipsBadKeys(t *testing.T) {
	good := newEC(t, "good").jwk()
	off := newEC(t, "off").jwk()
	off["y"] = off["x"] // not on the curve
	encKey := newRSA(t, "enc", "RS256").jwk()
	encKey["use"] = "enc"
	b, _ := json.Marshal(map[string]any{"keys": []any{off, map[string]any{"kty": "XYZ", "kid": "x"}, encKey, good}})
	keys, err := parseJWKS(b)
	if err != nil || len(keys) != 1 || keys[0].kid != "good" {
		t.Fatalf("keys %+v, err %v; want only the good key", keys, err)
	}
}

func hmacTokenRaw(t *testing.T, kid string, payload, secret []byte) string {
	t.Helper()
	h, _ := json.Marshal(map[string]any{"alg": "HS256", "kid": kid})
	signed := enc(h) + "." + enc(payload)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(signed))
	return signed + "." + enc(m.Sum(nil))
}

func mustMarshal(v any) []byte { b, _ := json.Marshal(v); return b }

func mustPKIX(t *testing.T, pub *rsa.PublicKey) []byte {
	t.Helper()
	b, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkVerifyRS256 is one request with a valid RS256 bearer token.
func BenchmarkVerifyRS256(b *testing.B) {
	t := &testing.T{}
	rs := newRSA(t, "rsa1", "RS256")
	prov := `{"issuer":"https://issuer.example.com","localJwks":{"inlineString":` + mustJSON(jwks(rs, newEC(t, "ec1"))) + `}}`
	f, err := New(istioConfig(t, prov), Options{Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest("GET", "http://svc/x", nil)
	r.Header.Set("Authorization", "Bearer "+rs.sign(t, claims(nil)))
	b.ReportAllocs()
	for b.Loop() {
		if res := f.Verify(context.Background(), r); res.Status != Valid {
			b.Fatal(res.Reason)
		}
	}
}

// TestVerifyNamed: a route's PerRouteConfig requirement_name checks that
// requirement_map entry instead of the rules (which let a missing token
// through): here the token is required; an unknown name is reported.
func TestVerifyNamed(t *testing.T) {
	rs := newRSA(t, "rsa1", "RS256")
	prov := `{"issuer":"https://issuer.example.com","audiences":["bookinfo"],"localJwks":{"inlineString":` + mustJSON(jwks(rs)) + `}}`
	cfg := istioConfig(t, prov)
	cfg.RequirementMap = map[string]*jwtv3.JwtRequirement{
		"strict": {RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: "origins-0"}}}
	f, err := New(cfg, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "http://svc/x", nil)
	if res := f.Verify(context.Background(), r); res.Status != Missing {
		t.Errorf("rules without a token: %v, want Missing (allowed)", res.Status)
	}
	if res, ok := f.VerifyNamed(context.Background(), r, "strict"); !ok || res.Status != Invalid || res.Reason != ReasonMissing {
		t.Errorf("strict without a token: %v %v %q, want Invalid %q", ok, res.Status, res.Reason, ReasonMissing)
	}
	r.Header.Set("Authorization", "Bearer "+rs.sign(t, claims(nil)))
	if res, ok := f.VerifyNamed(context.Background(), r, "strict"); !ok || res.Status != Valid {
		t.Errorf("strict with a token: %v %v, want Valid", ok, res.Status)
	}
	if _, ok := f.VerifyNamed(context.Background(), r, "nope"); ok {
		t.Error("an unknown requirement name was found")
	}
	cfg.RequirementMap["bad"] = &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: "missing"}}
	if _, err := New(cfg, Options{}); err == nil || !strings.Contains(err.Error(), `requirement_map["bad"].provider_name`) {
		t.Errorf("unknown provider in requirement_map: %v", err)
	}
}

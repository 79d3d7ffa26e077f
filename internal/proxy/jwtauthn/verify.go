package jwtauthn

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Envoy's failure texts (jwt_verify_lib status strings), which Envoy sends
// as the 401 body.
const (
	ReasonMissing        = "Jwt is missing"
	ReasonBadFormat      = "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
	ReasonBadAlg         = "Jwt algorithm is not supported"
	ReasonExpired        = "Jwt is expired"
	ReasonNotYetValid    = "Jwt not yet valid"
	ReasonBadIssuer      = "Jwt issuer is not configured"
	ReasonBadAudience    = "Audiences in Jwt are not allowed"
	ReasonUnknownKid     = "Jwks doesn't have key to match kid or alg from Jwt"
	ReasonBadSignature   = "Jwt verification fails"
	ReasonJWKSFetch      = "Jwks remote fetch is failed"
	ReasonBadPayloadJSON = "Jwt payload is an invalid JSON"
	// ReasonTooLarge is Bowline's own: Envoy has no token size limit of its
	// own, but its 60 KiB request-header limit bounds every token it sees.
	ReasonTooLarge = "Jwt is too large"
)

// MaxTokenBytes bounds the token the filter parses: Envoy's default
// max_request_headers_kb (60 KiB) for the whole request head, so no token an
// Envoy sidecar would accept in a header is refused, while absurd tokens (in
// a query parameter or a cookie, or under a raised header limit) are refused
// before any base64 or JSON work.
const MaxTokenBytes = 60 << 10

// algorithms is the allow-list of signature algorithms: what Envoy's
// jwt_verify_lib implements. "none" and anything else is refused when the
// token is parsed, before any key is looked at.
var algorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
	jose.HS256, jose.HS384, jose.HS512,
}

// token is a parsed, not yet verified JWT.
type token struct {
	jws            *jose.JSONWebSignature
	alg, kid       string
	payloadSegment string
	claims         map[string]any
}

func parseToken(raw string) (*token, string) {
	if len(raw) > MaxTokenBytes {
		return nil, ReasonTooLarge
	}
	if strings.Count(raw, ".") != 2 {
		return nil, ReasonBadFormat
	}
	_, rest, _ := strings.Cut(raw, ".")
	payload, _, _ := strings.Cut(rest, ".")
	jws, err := jose.ParseSignedCompact(raw, algorithms)
	if err != nil {
		if _, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return nil, ReasonBadAlg
		}
		return nil, ReasonBadFormat
	}
	h := jws.Signatures[0].Header
	t := &token{jws: jws, alg: h.Algorithm, kid: h.KeyID, payloadSegment: payload}
	if json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &t.claims) != nil || t.claims == nil {
		return nil, ReasonBadPayloadJSON
	}
	return t, ""
}

// checkClaims applies issuer, time (with skew) and audience rules.
func (t *token) checkClaims(p *provider, now time.Time) string {
	iss, _ := t.claims["iss"].(string)
	if p.issuer != "" && iss != p.issuer {
		return ReasonBadIssuer
	}
	skew := float64(p.skew / time.Second)
	unix := float64(now.UnixNano()) / 1e9
	if exp, ok := t.claims["exp"].(float64); ok && unix > exp+skew {
		return ReasonExpired
	}
	if nbf, ok := t.claims["nbf"].(float64); ok && unix+skew < nbf {
		return ReasonNotYetValid
	}
	if len(p.audiences) > 0 {
		okAud := false
		for _, a := range audiences(t.claims) {
			for _, want := range p.audiences {
				if strings.TrimSuffix(a, "/") == strings.TrimSuffix(want, "/") {
					okAud = true
				}
			}
		}
		if !okAud {
			return ReasonBadAudience
		}
	}
	return ""
}

func audiences(claims map[string]any) []string {
	switch v := claims["aud"].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// verifySig checks the signature with the keys, as jwt_verify_lib does: a
// key is a candidate when its kid (if both have one) and its alg (if it has
// one) match the token's; a candidate verifies only when its type fits the
// token's algorithm (RSA for RS/PS, EC on the algorithm's curve for ES,
// Ed25519 for EdDSA, oct for HS), so an RSA public key is never an HMAC
// secret. No candidate: ReasonUnknownKid; candidates but no valid signature:
// ReasonBadSignature.
func (t *token) verifySig(keys []key) string {
	candidate := false
	for _, k := range keys {
		if t.kid != "" && k.kid != "" && k.kid != t.kid {
			continue
		}
		if k.alg != "" && k.alg != t.alg {
			continue
		}
		candidate = true
		if !k.fits(t.alg) {
			continue
		}
		if _, err := t.jws.Verify(k.pub); err == nil {
			return ""
		}
	}
	if !candidate {
		return ReasonUnknownKid
	}
	return ReasonBadSignature
}

// fits reports whether k can verify signatures of alg.
func (k key) fits(alg string) bool {
	switch pub := k.pub.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return pub.Curve.Params().Name == "P-256"
		case "ES384":
			return pub.Curve.Params().Name == "P-384"
		case "ES512":
			return pub.Curve.Params().Name == "P-521"
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	case []byte:
		return strings.HasPrefix(alg, "HS")
	}
	return false
}

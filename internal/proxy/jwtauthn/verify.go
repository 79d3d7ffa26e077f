package jwtauthn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/json"
	"math/big"
	"strings"
	"time"
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
)

// token is a parsed, not yet verified JWT.
type token struct {
	raw            string
	alg, kid       string
	payloadSegment string
	signed         string // header.payload
	sig            []byte
	claims         map[string]any
}

func parseToken(raw string) (*token, string) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, ReasonBadFormat
	}
	hb, err1 := b64(parts[0])
	pb, err2 := b64(parts[1])
	sig, err3 := b64(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, ReasonBadFormat
	}
	var hdr struct{ Alg, Kid string }
	if json.Unmarshal(hb, &hdr) != nil {
		return nil, ReasonBadFormat
	}
	t := &token{raw: raw, alg: hdr.Alg, kid: hdr.Kid, payloadSegment: parts[1], signed: parts[0] + "." + parts[1], sig: sig}
	if json.Unmarshal(pb, &t.claims) != nil || t.claims == nil {
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

// verifySig checks the signature with the keys; kid, when present, must
// name a key.
func (t *token) verifySig(keys []key) string {
	h, kty, ok := algInfo(t.alg)
	if !ok {
		return ReasonBadAlg
	}
	digest := h.New()
	digest.Write([]byte(t.signed))
	sum := digest.Sum(nil)
	found := false
	for _, k := range keys {
		if t.kid != "" && k.kid != t.kid {
			continue
		}
		if k.alg != "" && k.alg != t.alg {
			continue
		}
		switch pub := k.pub.(type) {
		case *rsa.PublicKey:
			if kty != "RSA" {
				continue
			}
			found = true
			var err error
			if strings.HasPrefix(t.alg, "PS") {
				err = rsa.VerifyPSS(pub, h, sum, t.sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
			} else {
				err = rsa.VerifyPKCS1v15(pub, h, sum, t.sig)
			}
			if err == nil {
				return ""
			}
		case *ecdsa.PublicKey:
			if kty != "EC" {
				continue
			}
			size := (pub.Curve.Params().BitSize + 7) / 8
			if curveFor(t.alg) != pub.Curve.Params().Name {
				continue
			}
			found = true
			if len(t.sig) == 2*size {
				r := new(big.Int).SetBytes(t.sig[:size])
				s := new(big.Int).SetBytes(t.sig[size:])
				if ecdsa.Verify(pub, sum, r, s) {
					return ""
				}
			}
		}
	}
	if !found {
		return ReasonUnknownKid
	}
	return ReasonBadSignature
}

func algInfo(alg string) (crypto.Hash, string, bool) {
	switch alg {
	case "RS256", "PS256":
		return crypto.SHA256, "RSA", true
	case "RS384", "PS384":
		return crypto.SHA384, "RSA", true
	case "RS512", "PS512":
		return crypto.SHA512, "RSA", true
	case "ES256":
		return crypto.SHA256, "EC", true
	case "ES384":
		return crypto.SHA384, "EC", true
	case "ES512":
		return crypto.SHA512, "EC", true
	}
	return 0, "", false
}

func curveFor(alg string) string {
	switch alg {
	case "ES256":
		return "P-256"
	case "ES384":
		return "P-384"
	}
	return "P-521"
}

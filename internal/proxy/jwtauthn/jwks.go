package jwtauthn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
)

// key is one usable public key of a JWKS.
type key struct {
	kid, alg string
	pub      crypto.PublicKey
}

// parseJWKS parses a JSON Web Key Set. Keys of unknown type, or whose use
// is not "sig", are skipped; a set with no usable key is an error (Envoy
// rejects it too).
func parseJWKS(data []byte) ([]key, error) {
	var set struct {
		Keys []struct {
			Kty, Kid, Alg, Use, Crv string
			N, E, X, Y              string
		} `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	var out []key
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		var pub crypto.PublicKey
		switch k.Kty {
		case "RSA":
			n, err1 := b64(k.N)
			e, err2 := b64(k.E)
			if err1 != nil || err2 != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
				continue
			}
			ev := 0
			for _, b := range e {
				ev = ev<<8 | int(b)
			}
			pub = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: ev}
		case "EC":
			var curve elliptic.Curve
			switch k.Crv {
			case "P-256":
				curve = elliptic.P256()
			case "P-384":
				curve = elliptic.P384()
			case "P-521":
				curve = elliptic.P521()
			default:
				continue
			}
			x, err1 := b64(k.X)
			y, err2 := b64(k.Y)
			if err1 != nil || err2 != nil {
				continue
			}
			size := (curve.Params().BitSize + 7) / 8
			if len(x) != size || len(y) != size {
				continue
			}
			// Uncompressed point encoding validates the point is on the curve.
			raw := append(append([]byte{4}, x...), y...)
			pk, err := ecdsa.ParseUncompressedPublicKey(curve, raw)
			if err != nil {
				continue
			}
			pub = pk
		default:
			continue
		}
		out = append(out, key{kid: k.Kid, alg: k.Alg, pub: pub})
	}
	if len(out) == 0 {
		return nil, errors.New("jwks: no valid keys")
	}
	return out, nil
}

// b64 decodes base64url with or without padding.
func b64(s string) ([]byte, error) {
	for len(s)%4 != 0 && len(s) > 0 && s[len(s)-1] == '=' {
		s = s[:len(s)-1]
	}
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.URLEncoding.DecodeString(s)
}

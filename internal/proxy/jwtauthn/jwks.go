package jwtauthn

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// key is one usable verification key of a JWKS: an *rsa.PublicKey, an
// *ecdsa.PublicKey, an ed25519.PublicKey or (kty oct) a []byte HMAC secret.
type key struct {
	kid, alg string
	pub      any
}

// parseJWKS parses a JSON Web Key Set with go-jose. Keys go-jose cannot
// parse (unknown kty or curve, a point off its curve, bad base64), keys
// whose use is not "sig" and keys that cannot verify are skipped one by one;
// a set with no usable key is an error (Envoy rejects it too). Of a private
// key only the public part is kept.
func parseJWKS(data []byte) ([]key, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	var out []key
	for _, raw := range set.Keys {
		var jwk jose.JSONWebKey
		if err := json.Unmarshal(raw, &jwk); err != nil {
			continue
		}
		if jwk.Use != "" && jwk.Use != "sig" {
			continue
		}
		var pub any
		switch k := jwk.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			pub = k
		case *rsa.PrivateKey:
			pub = &k.PublicKey
		case *ecdsa.PrivateKey:
			pub = &k.PublicKey
		case ed25519.PrivateKey:
			pub = k.Public()
		case []byte:
			if len(k) == 0 {
				continue
			}
			pub = k
		default:
			continue
		}
		out = append(out, key{kid: jwk.KeyID, alg: jwk.Algorithm, pub: pub})
	}
	if len(out) == 0 {
		return nil, errors.New("jwks: no valid keys")
	}
	return out, nil
}

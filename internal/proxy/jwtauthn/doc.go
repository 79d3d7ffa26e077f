// Package jwtauthn is the proxy's JWT authentication engine for
// envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication (what the
// control plane generates from Istio RequestAuthentication): token
// extraction (headers with prefix, query parameters, cookies; Envoy's
// default Authorization: Bearer and access_token), token and JWKS parsing
// and signature verification with go-jose (github.com/go-jose/go-jose/v4)
// under an explicit allow-list of what Envoy's jwt_verify_lib implements
// (RS256/384/512, PS256/384/512, ES256/384/512, EdDSA with Ed25519 keys,
// HS256/384/512 with oct keys; never "none") and a key-type check per key (an
// RSA key never serves as an HMAC secret), tokens above MaxTokenBytes refused
// unparsed, against inline or remote JWKS (fetched through an injected
// Fetcher, cached for cache_duration, fail closed), issuer, audience, exp and
// nbf checks with
// a 60 s clock skew, and Envoy's requirement tree (provider_name,
// requires_any, requires_all, allow_missing, allow_missing_or_failed).
//
// Wire-up: compile once per config with New (errors are NACK reasons naming
// the field); per request call Verify before the RBAC filters. Invalid:
// answer 401 with Result.Reason as the text/plain body (Envoy's texts, e.g.
// "Jwt verification fails", "Jwt is expired") and header
// www-authenticate: Bearer realm="http://HOST/PATH", error="invalid_token";
// response_code_details jwt_authn_access_denied{REASON with spaces as _}.
// Missing: continue (the AuthorizationPolicy decides). Valid: Result.Apply
// to the request headers and pass Result.Metadata to authz.Request.Metadata.
//
// It is pure apart from the Fetcher; no goroutines, no package state. It
// must not import the rest of the proxy or the control plane.
package jwtauthn

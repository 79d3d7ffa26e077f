package validation

import "testing"

// raDoc is a RequestAuthentication foo/jwt whose spec body starts on line 7.
func raDoc(body string) string {
	return "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata:\n  name: jwt\n  namespace: foo\nspec:\n" + body
}

func TestRequestAuthenticationProblems(t *testing.T) {
	secRunCases(t, "jwt.yaml", []secCase{
		{name: "no issuer and no jwksUri", doc: raDoc(`
  jwtRules:
  - audiences: ["web"]
`), want: []string{
			"jwt.yaml:9: RequestAuthentication foo/jwt: spec.jwtRules[0].issuer: required unless jwksUri is set",
		}},
		{name: "jwks and jwksUri", doc: raDoc(`
  jwtRules:
  - issuer: example
    jwksUri: https://example.com/jwks.json
    jwks: '{"keys":[{"kty":"RSA","e":"AQAB","n":"x"}]}'
`), want: []string{
			"jwt.yaml:11: RequestAuthentication foo/jwt: spec.jwtRules[0].jwks: only one of jwks and jwksUri may be set",
		}},
		{name: "jwksUri scheme and host", doc: raDoc(`
  jwtRules:
  - issuer: example
    jwksUri: ftp://example.com/jwks.json
  - issuer: other
    jwksUri: "https://"
  - jwksUri: "hTPp\\blah"
`), want: []string{
			"jwt.yaml:10: RequestAuthentication foo/jwt: spec.jwtRules[0].jwksUri: \"ftp://example.com/jwks.json\" must be an http:// or https:// URL",
			"jwt.yaml:12: RequestAuthentication foo/jwt: spec.jwtRules[1].jwksUri: \"https://\" has no host",
			"jwt.yaml:13: RequestAuthentication foo/jwt: spec.jwtRules[2].jwksUri: \"hTPp\\\\blah\" must be an http:// or https:// URL",
		}},
		{name: "inline jwks", doc: raDoc(`
  jwtRules:
  - issuer: a
    jwks: not json
  - issuer: b
    jwks: '{"keys":[{"e":"AQAB"}]}'
  - issuer: c
    jwks: '{"keys":[]}'
`), want: []string{
			"jwt.yaml:10: RequestAuthentication foo/jwt: spec.jwtRules[0].jwks: not a valid JSON Web Key Set: not a JSON object",
			"jwt.yaml:12: RequestAuthentication foo/jwt: spec.jwtRules[1].jwks: not a valid JSON Web Key Set: key 0: missing key type \"kty\"",
			"jwt.yaml:14: RequestAuthentication foo/jwt: spec.jwtRules[2].jwks: not a valid JSON Web Key Set: \"keys\" is empty",
		}},
		{name: "token locations", doc: raDoc(`
  jwtRules:
  - issuer: example
    audiences: ["web", ""]
    fromHeaders:
    - prefix: "Bearer "
    fromParams: [""]
    fromCookies: [""]
`), want: []string{
			"jwt.yaml:10: RequestAuthentication foo/jwt: spec.jwtRules[0].audiences[1]: must not be empty",
			"jwt.yaml:12: RequestAuthentication foo/jwt: spec.jwtRules[0].fromHeaders[0].name: required",
			"jwt.yaml:13: RequestAuthentication foo/jwt: spec.jwtRules[0].fromParams[0]: must not be empty",
			"jwt.yaml:14: RequestAuthentication foo/jwt: spec.jwtRules[0].fromCookies[0]: must not be empty",
		}},
		{name: "claim to headers", doc: raDoc(`
  jwtRules:
  - issuer: example
    outputPayloadToHeader: "x payload"
    outputClaimToHeaders:
    - header: ":authority"
      claim: sub
    - header: x-group
    - claim: iss
    - header: x-user
      claim: sub
    - header: x-user
      claim: email
`), want: []string{
			"jwt.yaml:10: warning: RequestAuthentication foo/jwt: spec.jwtRules[0].outputPayloadToHeader: \"x payload\" is not a valid header name (letters, digits, '-' and '_')",
			"jwt.yaml:12: RequestAuthentication foo/jwt: spec.jwtRules[0].outputClaimToHeaders[0].header: \":authority\" is not a valid header name (letters, digits, '-' and '_')",
			"jwt.yaml:14: RequestAuthentication foo/jwt: spec.jwtRules[0].outputClaimToHeaders[1].claim: required",
			"jwt.yaml:15: RequestAuthentication foo/jwt: spec.jwtRules[0].outputClaimToHeaders[2].header: required",
			"jwt.yaml:18: warning: RequestAuthentication foo/jwt: spec.jwtRules[0].outputClaimToHeaders[4].header: header \"x-user\" is already written by outputClaimToHeaders[3]; each header must be unique",
		}},
		{name: "timeout and space delimited claims", doc: raDoc(`
  jwtRules:
  - issuer: example
    timeout: 0.5ms
    spaceDelimitedClaims: ["roles", ""]
  - issuer: other
    timeout: 1500us
`), want: []string{
			"jwt.yaml:10: RequestAuthentication foo/jwt: spec.jwtRules[0].timeout: duration 500\u00b5s must be at least 1ms",
			"jwt.yaml:11: RequestAuthentication foo/jwt: spec.jwtRules[0].spaceDelimitedClaims[1]: must not be empty",
			"jwt.yaml:13: RequestAuthentication foo/jwt: spec.jwtRules[1].timeout: duration 1.5ms must be a whole number of milliseconds",
		}},
		{name: "selector and targetRef", doc: raDoc(`
  selector:
    matchLabels:
      app: httpbin
  targetRef:
    kind: Gateway
    group: gateway.networking.k8s.io
    name: ingress
  jwtRules:
  - issuer: example
`), want: []string{
			"jwt.yaml:11: RequestAuthentication foo/jwt: spec.targetRef: only one of selector, targetRef and targetRefs may be set",
		}},
		{name: "bad targetRef group and kind", doc: raDoc(`
  targetRef:
    group: "__"
    kind: Serv_ice
    name: foo
`), want: []string{
			"jwt.yaml:9: RequestAuthentication foo/jwt: spec.targetRef.group: \"__\" is not a valid API group",
			"jwt.yaml:10: RequestAuthentication foo/jwt: spec.targetRef.kind: \"Serv_ice\" is not a valid kind",
		}},
	})
}

package validation

import (
	"encoding/json"
	"fmt"
	"net/url"

	security "istio.io/api/security/v1beta1"

	"github.com/bowline-mesh/bowline/internal/config"
)

// validateRequestAuthentication applies Istio's rules for
// RequestAuthentication: target selection and, per JWT rule, the issuer or
// key source, key set syntax, token locations and claim-to-header outputs.
func validateRequestAuthentication(obj *config.Object) []config.FieldError {
	ra, ok := obj.Spec.(*security.RequestAuthentication)
	if !ok {
		return []config.FieldError{{Path: "spec", Reason: fmt.Sprintf("unexpected spec type %T", obj.Spec)}}
	}
	r := &fieldErrors{}
	secCheckDryRun(r, obj)
	secCheckPolicyTarget(r, ra.GetSelector(), ra.GetTargetRef(), ra.GetTargetRefs())
	if len(ra.GetJwtRules()) > 4096 {
		r.errorf("spec.jwtRules", "at most 4096 rules are allowed, got %d", len(ra.GetJwtRules()))
	}
	for i, rule := range ra.GetJwtRules() {
		jwtCheckRule(r, indexPath("spec.jwtRules", i), rule)
	}
	return r.list
}

// jwtCheckRule checks one JWTRule at path.
func jwtCheckRule(r *fieldErrors, path string, rule *security.JWTRule) {
	if rule == nil {
		r.errorf(path, "must not be null")
		return
	}
	if rule.GetIssuer() == "" && rule.GetJwksUri() == "" {
		r.errorf(path+".issuer", "required unless jwksUri is set")
	}
	for k, aud := range rule.GetAudiences() {
		if aud == "" {
			r.errorf(indexPath(path+".audiences", k), "must not be empty")
		}
	}
	if uri := rule.GetJwksUri(); uri != "" {
		if p := jwtURIProblem(uri); p != "" {
			r.errorf(path+".jwksUri", "%s", p)
		}
		if rule.GetJwks() != "" {
			r.errorf(path+".jwks", "only one of jwks and jwksUri may be set")
		}
	}
	if jwks := rule.GetJwks(); jwks != "" {
		if p := jwtKeySetProblem(jwks); p != "" {
			r.errorf(path+".jwks", "not a valid JSON Web Key Set: %s", p)
		}
	}
	for k, h := range rule.GetFromHeaders() {
		hp := indexPath(path+".fromHeaders", k)
		switch {
		case h == nil:
			r.errorf(hp, "must not be null")
		case h.GetName() == "":
			r.errorf(hp+".name", "required")
		}
	}
	for k, p := range rule.GetFromParams() {
		if p == "" {
			r.errorf(indexPath(path+".fromParams", k), "must not be empty")
		}
	}
	for k, c := range rule.GetFromCookies() {
		if c == "" {
			r.errorf(indexPath(path+".fromCookies", k), "must not be empty")
		}
	}
	if h := rule.GetOutputPayloadToHeader(); h != "" && !secHeaderNameRE.MatchString(h) {
		r.warnf(path+".outputPayloadToHeader", "%q is not a valid header name (letters, digits, '-' and '_')", h)
	}
	headers := map[string]int{}
	for k, ch := range rule.GetOutputClaimToHeaders() {
		cp := indexPath(path+".outputClaimToHeaders", k)
		if ch == nil {
			r.errorf(cp, "must not be null")
			continue
		}
		if ch.GetClaim() == "" {
			r.errorf(cp+".claim", "required")
		}
		switch h := ch.GetHeader(); {
		case h == "":
			r.errorf(cp+".header", "required")
		case !secHeaderNameRE.MatchString(h):
			r.errorf(cp+".header", "%q is not a valid header name (letters, digits, '-' and '_')", h)
		default:
			if first, dup := headers[h]; dup {
				r.warnf(cp+".header", "header %q is already written by outputClaimToHeaders[%d]; each header must be unique", h, first)
			} else {
				headers[h] = k
			}
		}
	}
	durationProblems(r, path+".timeout", rule.GetTimeout())
	if n := len(rule.GetSpaceDelimitedClaims()); n > 64 {
		r.errorf(path+".spaceDelimitedClaims", "at most 64 claims are allowed, got %d", n)
	}
	for k, c := range rule.GetSpaceDelimitedClaims() {
		if c == "" {
			r.errorf(indexPath(path+".spaceDelimitedClaims", k), "must not be empty")
		}
	}
}

// jwtURIProblem checks a jwksUri: an absolute http(s) URL with a host, at most 2048 characters.
func jwtURIProblem(uri string) string {
	if len(uri) > 2048 {
		return fmt.Sprintf("must be at most 2048 characters, got %d", len(uri))
	}
	u, err := url.Parse(uri)
	switch {
	case err != nil:
		return fmt.Sprintf("%q is not a valid URL", uri)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("%q must be an http:// or https:// URL", uri)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Sprintf("%q has no host", uri)
	}
	return ""
}

// jwtKeySetProblem checks inline JWKS: a JSON Web Key Set ({"keys": [...]})
// or a single JSON Web Key, each key an object with "kty".
func jwtKeySetProblem(jwks string) string {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal([]byte(jwks), &doc); err != nil {
		return "not a JSON object"
	}
	rawKeys, isSet := doc["keys"]
	if !isSet {
		return jwtKeyProblem(doc)
	}
	var keys []map[string]json.RawMessage
	if err := json.Unmarshal(rawKeys, &keys); err != nil {
		return `"keys" must be a list of objects`
	}
	if len(keys) == 0 {
		return `"keys" is empty`
	}
	for i, k := range keys {
		if p := jwtKeyProblem(k); p != "" {
			return fmt.Sprintf("key %d: %s", i, p)
		}
	}
	return ""
}

// jwtKeyProblem checks that a JSON Web Key names its key type.
func jwtKeyProblem(key map[string]json.RawMessage) string {
	var kty string
	if err := json.Unmarshal(key["kty"], &kty); err != nil || kty == "" {
		return `missing key type "kty"`
	}
	return ""
}

package config

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// KindSecret is core/v1 Secret: the TLS credentials Gateway servers name in
// tls.credentialName (and DestinationRules in tls.credentialName). In local
// mode a Secret document in the config directory; on Kubernetes the real
// Secret.
const KindSecret = "Secret"

// Secret is a decoded core/v1 Secret: its type and data (base64 decoded,
// stringData merged over it as the API server does). Its data must never be
// logged or shown: String and MarshalJSON give key names and hashes only.
type Secret struct {
	// Type is the Secret's type, e.g. "kubernetes.io/tls" or "Opaque"
	// ("" when the document gives none).
	Type string
	// Data maps each key to its bytes.
	Data map[string][]byte
}

// MarshalJSON writes the type and, per key, the SHA-256 of its value, never
// the data itself: what config dumps and content hashes of a Secret see (a
// changed value changes the hash, so the mesh is rebuilt).
func (s *Secret) MarshalJSON() ([]byte, error) {
	sums := make(map[string]string, len(s.Data))
	for k, v := range s.Data {
		sum := sha256.Sum256(v)
		sums[k] = "sha256:" + hex.EncodeToString(sum[:])
	}
	return json.Marshal(struct {
		Type string            `json:"type,omitempty"`
		Data map[string]string `json:"data,omitempty"`
	}{s.Type, sums})
}

// String names the type and keys only.
func (s *Secret) String() string {
	b, _ := s.MarshalJSON()
	return string(b)
}

// Secret keys Istio reads TLS credentials from: a kubernetes.io/tls Secret's
// and a generic Secret's (pilot's credentials controller).
const (
	SecretTLSCert     = "tls.crt"
	SecretTLSKey      = "tls.key"
	SecretTLSCA       = "ca.crt"
	SecretGenericCert = "cert"
	SecretGenericKey  = "key"
	SecretGenericCA   = "cacert"
)

// Certificate returns the certificate chain and private key (PEM): keys
// cert/key of a generic Secret, else tls.crt/tls.key, as Istio reads them.
// The error says which keys are missing.
func (s *Secret) Certificate() (cert, key []byte, err error) {
	for _, keys := range [][2]string{{SecretGenericCert, SecretGenericKey}, {SecretTLSCert, SecretTLSKey}} {
		if c, k := s.Data[keys[0]], s.Data[keys[1]]; len(c) > 0 && len(k) > 0 {
			return c, k, nil
		}
	}
	return nil, nil, fmt.Errorf("neither keys %q and %q nor %q and %q are set (found: %s)",
		SecretGenericCert, SecretGenericKey, SecretTLSCert, SecretTLSKey, s.keyList())
}

// TrustBundle returns the CA certificates (PEM) of key cacert, else ca.crt.
func (s *Secret) TrustBundle() ([]byte, error) {
	for _, k := range []string{SecretGenericCA, SecretTLSCA} {
		if v := s.Data[k]; len(v) > 0 {
			return v, nil
		}
	}
	return nil, fmt.Errorf("no key %q or %q is set (found: %s)", SecretGenericCA, SecretTLSCA, s.keyList())
}

func (s *Secret) keyList() string {
	if len(s.Data) == 0 {
		return "no keys"
	}
	return strings.Join(sortedKeys(s.Data), ", ")
}

// SecretOf returns the Secret of a Secret object, or nil for other objects.
func SecretOf(o *Object) *Secret {
	if o.GVK.Kind != KindSecret {
		return nil
	}
	s, _ := o.Spec.(*Secret)
	return s
}

// parseSecret reads a core/v1 Secret document into a KindSecret object.
func parseSecret(res *Result, src Source, top map[string]*yaml.Node, keyLines map[string]int, opts ParseOptions) {
	obj := &Object{GVK: GroupVersionKind{Version: "v1", Kind: KindSecret}, Source: src, Lines: LineIndex{}}
	d := &specDecoder{lines: obj.Lines}
	sec := &Secret{Data: map[string][]byte{}}
	for _, k := range sortedKeys(keyLines) {
		obj.Lines[k] = keyLines[k]
		switch k {
		case "apiVersion", "kind", "metadata", "data", "stringData", "type", "immutable":
		default:
			d.errorf(k, "unknown field %q at the top level of Secret", k)
		}
	}
	d.metadata(obj, top["metadata"], opts)
	if t := top["type"]; t != nil {
		sec.Type = d.str("type", t)
	}
	for _, field := range []string{"data", "stringData"} {
		n := top[field]
		if n == nil || isNull(n) {
			continue
		}
		if n.Kind != yaml.MappingNode {
			d.errorf(field, "expected object, got %s", nodeKind(n))
			continue
		}
		vals, lines := mapping(n)
		for _, k := range sortedKeys(vals) {
			p := field + "." + k
			obj.Lines[p] = lines[k]
			v := d.str(p, vals[k])
			if field == "stringData" {
				sec.Data[k] = []byte(v)
				continue
			}
			b, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				d.errorf(p, "not base64: %v (use stringData for plain text)", err)
				continue
			}
			sec.Data[k] = b
		}
	}
	if sec.Type == "kubernetes.io/tls" {
		for _, k := range []string{"tls.crt", "tls.key"} {
			if _, ok := sec.Data[k]; !ok {
				d.errorf("data", "a kubernetes.io/tls Secret needs key %q", k)
			}
		}
	}
	obj.Spec = sec
	if len(d.errs) > 0 {
		for _, fe := range d.errs {
			res.Problems = append(res.Problems, ProblemFor(obj, fe))
		}
		return
	}
	res.Objects = append(res.Objects, obj)
}

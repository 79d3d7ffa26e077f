package config

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseSecret(t *testing.T) {
	const doc = `apiVersion: v1
kind: Secret
metadata: {name: my-cred, namespace: istio-system}
type: kubernetes.io/tls
data:
  tls.crt: Y2VydA==
  tls.key: a2V5
stringData:
  ca.crt: plain-ca
`
	res := Parse("secret.yaml", []byte(doc), ParseOptions{})
	if len(res.Problems) != 0 || len(res.Objects) != 1 {
		t.Fatalf("problems %v, objects %d; want none and 1", res.Problems, len(res.Objects))
	}
	obj := res.Objects[0]
	if got := obj.Ref(); got != "Secret istio-system/my-cred" {
		t.Errorf("ref = %q", got)
	}
	s := SecretOf(obj)
	if s == nil || s.Type != "kubernetes.io/tls" || string(s.Data["tls.crt"]) != "cert" || string(s.Data["tls.key"]) != "key" ||
		string(s.Data["ca.crt"]) != "plain-ca" {
		t.Fatalf("secret = %+v", s)
	}
	// Dumps and hashes see key names and digests, never the values.
	b, err := json.Marshal(obj.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "plain-ca") || strings.Contains(string(b), "Y2VydA") || !strings.Contains(string(b), `"tls.key":"sha256:`) {
		t.Errorf("marshalled secret = %s, want key names with digests only", b)
	}
	if strings.Contains(s.String(), "plain-ca") {
		t.Errorf("String() = %s shows a value", s)
	}
}

func TestParseSecretProblems(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"not base64", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  tls.crt: '%%%'\n",
			"secret.yaml:5: Secret default/s: data.tls.crt: not base64"},
		{"tls without key", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: Y2VydA==\n",
			`Secret default/s: data: a kubernetes.io/tls Secret needs key "tls.key"`},
		{"unknown field", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nspec: {}\n",
			`secret.yaml:4: Secret default/s: spec: unknown field "spec" at the top level of Secret`},
		{"data not a map", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: [a]\n",
			"Secret default/s: data: expected object, got list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := Parse("secret.yaml", []byte(tc.doc), ParseOptions{})
			if len(res.Objects) != 0 {
				t.Errorf("a bad Secret was accepted")
			}
			var got []string
			for _, p := range res.Problems {
				got = append(got, p.String())
			}
			if !strings.Contains(strings.Join(got, "\n"), tc.want) {
				t.Errorf("problems:\n%s\nwant one containing %q", strings.Join(got, "\n"), tc.want)
			}
		})
	}
}

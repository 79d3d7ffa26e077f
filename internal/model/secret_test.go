package model

import (
	"strings"
	"testing"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/config"
)

func secretObj(ns, name string, data map[string]string) *config.Object {
	s := &config.Secret{Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return &config.Object{GVK: config.GroupVersionKind{Version: "v1", Kind: config.KindSecret},
		Meta: config.Meta{Name: name, Namespace: ns}, Spec: s}
}

func TestSecretCredentials(t *testing.T) {
	snap := Build([]*config.Object{
		secretObj("istio-system", "tls", map[string]string{"tls.crt": "C1", "tls.key": "K1", "ca.crt": "CA1"}),
		secretObj("istio-system", "generic", map[string]string{"cert": "C2", "key": "K2", "tls.crt": "ignored", "tls.key": "ignored"}),
		secretObj("istio-system", "split", map[string]string{"tls.crt": "C3", "tls.key": "K3", "ca.crt": "not this one"}),
		secretObj("istio-system", "split-cacert", map[string]string{"cacert": "CA3"}),
		secretObj("istio-system", "empty", map[string]string{"tls.crt": "", "tls.key": "K"}),
		secretObj("other", "tls", map[string]string{"tls.crt": "C4", "tls.key": "K4"}),
	}, nil, Options{})
	for _, tc := range []struct {
		ns, name         string
		cert, key, ca    string
		certErr, caError string
	}{
		{"istio-system", "tls", "C1", "K1", "CA1", "", ""},
		{"istio-system", "generic", "C2", "K2", "", "", `secret istio-system/generic: no key "cacert" or "ca.crt" is set (found: cert, key, tls.crt, tls.key)`},
		{"istio-system", "split", "C3", "K3", "CA3", "", ""},
		{"istio-system", "empty", "", "", "", `secret istio-system/empty: neither keys "cert" and "key" nor "tls.crt" and "tls.key" are set (found: tls.crt, tls.key)`,
			`no key "cacert" or "ca.crt" is set`},
		{"istio-system", "missing", "", "", "", "secret istio-system/missing not found",
			"secret istio-system/missing not found (nor istio-system/missing-cacert)"},
		{"other", "tls", "C4", "K4", "", "", `no key`},
	} {
		t.Run(tc.ns+"/"+tc.name, func(t *testing.T) {
			cert, key, err := snap.SecretCertificate(tc.ns, tc.name)
			if tc.certErr != "" {
				if err == nil || err.Error() != tc.certErr {
					t.Errorf("certificate error = %v, want %q", err, tc.certErr)
				}
			} else if err != nil || string(cert) != tc.cert || string(key) != tc.key {
				t.Errorf("certificate = %q %q %v, want %q %q", cert, key, err, tc.cert, tc.key)
			}
			ca, err := snap.SecretCA(tc.ns, tc.name)
			if tc.caError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.caError) {
					t.Errorf("ca error = %v, want %q", err, tc.caError)
				}
			} else if err != nil || string(ca) != tc.ca {
				t.Errorf("ca = %q %v, want %q", ca, err, tc.ca)
			}
		})
	}
}

func TestCredentialRef(t *testing.T) {
	for _, tc := range []struct{ in, ns, name string }{
		{"my-cred", "istio-system", "my-cred"},
		{"kubernetes-gateway://apps/my-cred", "apps", "my-cred"},
		{"kubernetes-gateway://my-cred", "istio-system", "my-cred"},
	} {
		if ns, name := CredentialRef(tc.in, "istio-system"); ns != tc.ns || name != tc.name {
			t.Errorf("CredentialRef(%q) = %s/%s, want %s/%s", tc.in, ns, name, tc.ns, tc.name)
		}
	}
}

func TestCredentialProblems(t *testing.T) {
	gw := &config.Object{GVK: config.GroupVersionKind{Group: config.GroupNetworking, Version: "v1", Kind: config.KindGateway},
		Meta: config.Meta{Name: "gw", Namespace: "default"}, Spec: &networking.Gateway{Servers: []*networking.Server{
			{Port: &networking.Port{Number: 443, Name: "a", Protocol: "HTTPS"}, Hosts: []string{"a.example.com"},
				Tls: &networking.ServerTLSSettings{Mode: networking.ServerTLSSettings_SIMPLE, CredentialName: "present"}},
			{Port: &networking.Port{Number: 443, Name: "b", Protocol: "HTTPS"}, Hosts: []string{"b.example.com"},
				Tls: &networking.ServerTLSSettings{Mode: networking.ServerTLSSettings_SIMPLE, CredentialName: "absent"}},
		}}}
	snap := Build([]*config.Object{gw, secretObj("istio-system", "present", map[string]string{"tls.crt": "c", "tls.key": "k"})}, nil, Options{})
	want := `Gateway default/gw: spec.servers[1].tls.credentialName: Secret "absent" not found; the server is not served`
	if got := snap.Problems(); len(got) != 1 || got[0] != want {
		t.Errorf("problems = %q, want [%q]", got, want)
	}
}

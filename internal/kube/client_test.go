package kube

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// kubeconfigWithContext is a kubeconfig whose current context has namespace ns ("" for none).
const kubeconfigWithContext = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443"}
users:
- name: u
  user: {token: t}
contexts:
- name: with-ns
  context: {cluster: c, user: u, namespace: bookinfo}
- name: without-ns
  context: {cluster: c, user: u}
current-context: %s
`

func TestUserNamespace(t *testing.T) {
	for _, tc := range []struct{ name, context, want string }{
		{"the context's namespace", "with-ns", "bookinfo"},
		{"default when the context names none", "without-ns", "default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "kubeconfig")
			if err := os.WriteFile(file, fmt.Appendf(nil, kubeconfigWithContext, tc.context), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := UserNamespace(file)
			if err != nil || got != tc.want {
				t.Errorf("UserNamespace = %q, %v; want %q", got, err, tc.want)
			}
			t.Setenv("KUBECONFIG", file) // found as kubectl finds it
			if got, err := UserNamespace(""); err != nil || got != tc.want {
				t.Errorf("UserNamespace via $KUBECONFIG = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	t.Run("a missing kubeconfig is an error naming it", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nope")
		if _, err := UserNamespace(missing); err == nil {
			t.Errorf("UserNamespace(%s): no error", missing)
		}
	})
}

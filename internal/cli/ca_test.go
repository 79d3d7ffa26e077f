package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/internal/ca"
)

// caFixtures writes, at a fixed time, a root, an intermediate in the cacerts
// layout, a workload chain and a broken copy of the layout. Keys are random,
// so the output shows nothing derived from them.
func caFixtures(t *testing.T) (dir string) {
	t.Helper()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	dir = t.TempDir()
	root, err := ca.NewRoot(ca.RootParams{TrustDomain: "example.org", Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	inter, err := ca.NewIntermediate(ca.IntermediateParams{Parent: root, TrustDomain: "example.org", Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*ca.Material{"root": root, "cacerts": inter} {
		if err := m.Write(ca.WriteParams{Dir: filepath.Join(dir, name), Now: t0}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := ca.New(ca.Config{Dir: filepath.Join(dir, "cacerts"), TrustDomain: "example.org", Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	csr, err := os.ReadFile(filepath.Join("testdata", "ca", "workload.csr"))
	if err != nil {
		t.Fatal(err)
	}
	issued, err := c.Sign(ca.SignParams{CSR: csr, Identity: ca.Identity{Namespace: "default", ServiceAccount: "productpage"}, TTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("workload.pem", ca.EncodeCertificates(append(issued.Chain, issued.Roots...)...))
	write("leaf.pem", ca.EncodeCertificates(issued.Leaf()))
	write("chain.pem", ca.EncodeCertificates(issued.Chain...))

	other, err := ca.NewRoot(ca.RootParams{TrustDomain: "example.org", Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	if err := inter.Write(ca.WriteParams{Dir: filepath.Join(dir, "broken"), Now: t0}); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join("broken", ca.RootCertFile), ca.EncodeCertificates(other.Cert))
	return dir
}

func TestCAInspect(t *testing.T) {
	dir := caFixtures(t)
	at := "2026-03-02T00:00:00Z"
	tests := []struct {
		name     string
		args     []string
		wantCode int
	}{
		{"dir", []string{"ca", "inspect", filepath.Join(dir, "cacerts"), "--at", at}, 0},
		{"workload_chain", []string{"ca", "inspect", filepath.Join(dir, "workload.pem"), "--at", at}, 0},
		{"chain_with_root", []string{"ca", "inspect", filepath.Join(dir, "chain.pem"), "--root", filepath.Join(dir, "root", "root-cert.pem"), "--at", at}, 0},
		{"leaf_missing_intermediate", []string{"ca", "inspect", filepath.Join(dir, "leaf.pem"), "--root", filepath.Join(dir, "root", "root-cert.pem"), "--at", at}, 1},
		{"leaf_without_root", []string{"ca", "inspect", filepath.Join(dir, "leaf.pem"), "--at", at}, 1},
		{"expired", []string{"ca", "inspect", filepath.Join(dir, "workload.pem"), "--at", "2026-03-03T00:00:00Z"}, 1},
		{"broken_dir", []string{"ca", "inspect", filepath.Join(dir, "broken"), "--at", at}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := run(t, "", tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr: %s", code, tt.wantCode, out, errOut)
			}
			golden(t, "ca_inspect_"+tt.name, out+errOut)
		})
	}
}

func TestCAInitAndIntermediate(t *testing.T) {
	dir := t.TempDir()
	rootDir := filepath.Join(dir, "root")
	out, errOut, code := run(t, "", "ca", "init", "--dir", rootDir, "--trust-domain", "example.org")
	if code != 0 || !strings.Contains(out, "wrote a self-signed root CA") || !strings.Contains(out, "O=example.org") {
		t.Fatalf("init: exit %d\n%s%s", code, out, errOut)
	}
	fi, err := os.Stat(filepath.Join(rootDir, ca.CAKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("ca-key.pem: %v %v", fi, err)
	}
	before, _ := os.ReadFile(filepath.Join(rootDir, ca.CACertFile))

	_, errOut, code = run(t, "", "ca", "init", "--dir", rootDir)
	if code != 1 || !strings.Contains(errOut, "refusing to overwrite them (use --force)") {
		t.Fatalf("second init: exit %d stderr %s", code, errOut)
	}
	if after, _ := os.ReadFile(filepath.Join(rootDir, ca.CACertFile)); string(after) != string(before) {
		t.Fatal("refused init still changed the root")
	}
	if _, errOut, code = run(t, "", "ca", "init", "--dir", rootDir, "--trust-domain", "example.org", "--force"); code != 0 {
		t.Fatalf("forced init: exit %d %s", code, errOut)
	}
	if after, _ := os.ReadFile(filepath.Join(rootDir, ca.CACertFile)); string(after) == string(before) {
		t.Fatal("forced init kept the old root")
	}

	interDir := filepath.Join(dir, "cluster1")
	out, errOut, code = run(t, "", "ca", "intermediate", "--root-cert", filepath.Join(rootDir, ca.CACertFile),
		"--root-key", filepath.Join(rootDir, ca.CAKeyFile), "--out", interDir, "--trust-domain", "example.org", "--ttl", "720h")
	if code != 0 || !strings.Contains(out, "Bowline Intermediate CA") {
		t.Fatalf("intermediate: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = run(t, "", "ca", "inspect", interDir)
	if code != 0 || !strings.Contains(out, "chain: OK") || !strings.Contains(out, "path length 0") || !strings.Contains(out, "29d 23h") {
		t.Fatalf("inspect intermediate: exit %d\n%s%s", code, out, errOut)
	}
	// The control plane loads it as a plug-in CA.
	if _, err := ca.New(ca.Config{Dir: interDir, TrustDomain: "example.org"}); err != nil {
		t.Fatal(err)
	}

	_, errOut, code = run(t, "", "ca", "intermediate", "--root-cert", filepath.Join(interDir, ca.CACertFile),
		"--root-key", filepath.Join(rootDir, ca.CAKeyFile), "--out", filepath.Join(dir, "bad"))
	if code != 1 || !strings.Contains(errOut, "parent key does not match") {
		t.Fatalf("mismatched key: exit %d stderr %s", code, errOut)
	}
	if _, errOut, code = run(t, "", "ca", "init"); code != 2 || !strings.Contains(errOut, "--dir is required") {
		t.Fatalf("missing --dir: exit %d %s", code, errOut)
	}
}

// TestCARotateRoot runs the three rotate-root steps on a live directory and
// checks each refusal a user can hit.
func TestCARotateRoot(t *testing.T) {
	dir := t.TempDir()
	live, newRoot, newCA := filepath.Join(dir, "cacerts"), filepath.Join(dir, "newroot"), filepath.Join(dir, "newca")
	for _, args := range [][]string{
		{"ca", "init", "--dir", live},
		{"ca", "init", "--dir", newRoot},
		{"ca", "intermediate", "--root-cert", filepath.Join(newRoot, ca.CACertFile), "--root-key", filepath.Join(newRoot, ca.CAKeyFile), "--out", newCA},
	} {
		if out, errOut, code := run(t, "", args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	oldRoot, _ := os.ReadFile(filepath.Join(live, ca.RootCertFile))

	_, errOut, code := run(t, "", "ca", "rotate-root", "sign", "--dir", live, "--from", newCA)
	if code != 1 || !strings.Contains(errOut, "is not in") || !strings.Contains(errOut, "trust it first") {
		t.Fatalf("sign before trust: exit %d %s", code, errOut)
	}
	if _, errOut, code = run(t, "", "ca", "rotate-root", "trust", "--dir", live); code != 2 || !strings.Contains(errOut, "--root is required") {
		t.Fatalf("trust without --root: exit %d %s", code, errOut)
	}
	out, errOut, code := run(t, "", "ca", "rotate-root", "trust", "--dir", live, "--root", filepath.Join(newRoot, ca.CACertFile))
	if code != 0 || !strings.Contains(out, "now holds 2 roots") || !strings.Contains(out, "root 2") {
		t.Fatalf("trust: exit %d\n%s%s", code, out, errOut)
	}
	both, _ := os.ReadFile(filepath.Join(live, ca.RootCertFile))
	if !strings.HasPrefix(string(both), string(oldRoot)) {
		t.Fatal("the old root is not first in the combined bundle")
	}
	out, errOut, code = run(t, "", "ca", "rotate-root", "sign", "--dir", live, "--from", newCA)
	if code != 0 || !strings.Contains(out, "Bowline Intermediate CA") {
		t.Fatalf("sign: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = run(t, "", "ca", "inspect", live)
	if code != 0 || !strings.Contains(out, "chain: OK") {
		t.Fatalf("inspect after sign: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = run(t, "", "ca", "rotate-root", "retire", "--dir", live)
	if code != 0 || !strings.Contains(out, "retired 1 root(s)") {
		t.Fatalf("retire: exit %d\n%s%s", code, out, errOut)
	}
	m, err := ca.LoadMaterial(live, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(filepath.Join(newRoot, ca.CACertFile))
	if len(m.Roots) != 1 || string(ca.EncodeCertificates(m.Roots...)) != string(want) {
		t.Fatalf("after retire root-cert.pem holds %d roots, want only the new one", len(m.Roots))
	}
	if out, _, code = run(t, "", "ca", "rotate-root", "retire", "--dir", live); code != 0 || !strings.Contains(out, "nothing to retire") {
		t.Fatalf("second retire: exit %d %s", code, out)
	}
}

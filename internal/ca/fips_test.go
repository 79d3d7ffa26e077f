package ca

import (
	"crypto/fips140"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// TestFIPS re-runs TestFIPSMode in a child process with GODEBUG=fips140=on,
// so the CA is proven to work with Go's FIPS 140-3 module enforced.
func TestFIPS(t *testing.T) {
	if fips140.Enabled() {
		t.Skip("already in FIPS mode: TestFIPSMode runs directly")
	}
	if testing.Short() {
		t.Skip("short mode: skipping the FIPS child process")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFIPSMode$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "GODEBUG=fips140=on")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("FIPS child failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestFIPSMode") {
		t.Fatalf("TestFIPSMode did not pass in the child:\n%s", out)
	}
}

// TestFIPSMode creates a root, an intermediate and a workload SVID and verifies
// them. It skips unless FIPS 140-3 mode is on (GODEBUG=fips140=on, or a binary
// built with GOFIPS140).
func TestFIPSMode(t *testing.T) {
	if !fips140.Enabled() {
		t.Skip("not in FIPS 140-3 mode (run with GODEBUG=fips140=on)")
	}
	root, err := NewRoot(RootParams{TrustDomain: "cluster.local", Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	inter, err := NewIntermediate(IntermediateParams{Parent: root, TrustDomain: "cluster.local", Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := inter.Write(WriteParams{Dir: dir, Now: t0}); err != nil {
		t.Fatal(err)
	}
	c := newTestCA(t, Config{Dir: dir})
	issued, err := c.Sign(SignParams{CSR: newCSR(t, nil, csrOptions{}), Identity: web})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := x509svid.Verify(issued.Chain, x509bundle.FromX509Authorities(c.TrustDomain(), issued.Roots), x509svid.WithTime(t0)); err != nil {
		t.Fatalf("verify in FIPS mode: %v", err)
	}
	if _, err := c.IssueServing([]string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
}

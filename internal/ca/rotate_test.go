package ca

import (
	"context"
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

// TestRootRotationSteps walks a CA directory through the three steps with a
// DirWatcher reloading the CA, and checks what the CA trusts and signs with
// after each: a certificate issued before the rotation keeps verifying until
// the old root is retired, and the serving certificate follows the signer.
func TestRootRotationSteps(t *testing.T) {
	now := time.Now()
	dir, newDir := t.TempDir(), t.TempDir()
	c, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	oldRoot := c.TrustBundle()[0]
	w, err := NewDirWatcher(c, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	// A step rewrites the directory file by file, so the watcher may reload
	// more than once per step (at an in-between state that validates);
	// each step therefore waits for what it must bring about, woken by the
	// reloads, not for one reload signal.
	waitReload := func(step string, done func() bool) {
		t.Helper()
		deadline := time.After(time.Minute)
		for !done() {
			select {
			case <-w.Reloaded():
			case <-time.After(50 * time.Millisecond):
			case <-deadline:
				t.Fatalf("%s: the CA did not take the change within a minute", step)
			}
		}
	}
	serving := c.NewServingCertificate([]string{"127.0.0.1"})
	before, err := serving.Certificate()
	if err != nil {
		t.Fatal(err)
	}

	newRoot, err := NewRoot(RootParams{TrustDomain: "cluster.local", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	inter, err := NewIntermediate(IntermediateParams{Parent: newRoot, TrustDomain: "cluster.local", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if err := inter.Write(WriteParams{Dir: newDir, Now: now}); err != nil {
		t.Fatal(err)
	}

	if _, err := SwitchSigner(SwitchParams{Dir: dir, From: newDir, Now: now}); err == nil || !strings.Contains(err.Error(), "trust it first") {
		t.Fatalf("switch before trust: %v, want a refusal", err)
	}

	bundle, err := TrustRoots(TrustParams{Dir: dir, Roots: []*x509.Certificate{newRoot.Cert}, Now: now})
	if err != nil || len(bundle) != 2 || !bundle[0].Equal(oldRoot) {
		t.Fatalf("trust: %d roots, %v", len(bundle), err)
	}
	waitReload("trust", func() bool { return len(c.TrustBundle()) == 2 })
	if got := c.TrustBundle(); len(got) != 2 || !got[1].Equal(newRoot.Cert) {
		t.Fatalf("after trust the CA bundle has %d roots", len(got))
	}
	if s, _ := serving.Certificate(); s.Leaf.CheckSignatureFrom(oldRoot) != nil {
		t.Error("after trust the serving certificate is not signed by the old root any more")
	}

	if _, err := SwitchSigner(SwitchParams{Dir: dir, From: newDir, Now: now}); err != nil {
		t.Fatal(err)
	}
	waitReload("switch", func() bool {
		s, err := serving.Certificate()
		if err != nil || s.Leaf.CheckSignatureFrom(inter.Cert) != nil {
			return false
		}
		issued, err := c.Sign(SignParams{CSR: newCSR(t, nil, csrOptions{}), Identity: web})
		return err == nil && len(issued.Chain) == 2 && issued.Chain[1].Equal(inter.Cert)
	})
	issued, err := c.Sign(SignParams{CSR: newCSR(t, nil, csrOptions{}), Identity: web})
	if err != nil {
		t.Fatal(err)
	}
	if len(issued.Chain) != 2 || !issued.Chain[1].Equal(inter.Cert) || len(issued.Roots) != 2 {
		t.Fatalf("after switch: chain of %d, roots %d; want leaf+new intermediate and both roots", len(issued.Chain), len(issued.Roots))
	}
	after, err := serving.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	if after == before || after.Leaf.CheckSignatureFrom(inter.Cert) != nil {
		t.Error("serving certificate not re-issued by the new signer after the switch")
	}

	removed, err := RetireRoots(RetireParams{Dir: dir, Now: now})
	if err != nil || len(removed) != 1 || !removed[0].Equal(oldRoot) {
		t.Fatalf("retire removed %d roots, %v", len(removed), err)
	}
	waitReload("retire", func() bool { return len(c.TrustBundle()) == 1 })
	if got := c.TrustBundle(); len(got) != 1 || !got[0].Equal(newRoot.Cert) {
		t.Fatalf("after retire the bundle has %d roots, want the new one only", len(got))
	}
	if again, err := RetireRoots(RetireParams{Dir: dir, Now: now}); err != nil || again != nil {
		t.Errorf("second retire: %v, %v", again, err)
	}
}

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/internal/ca"
)

// This file proves that certificate rotation and root rotation drop no
// request: ~200 req/s flow client -> client sidecar -> mTLS -> server
// sidecar -> backend while certificates (and the root) change underneath.
// The long version (the issue's: 2-minute certificates, 5 minutes) runs with
// BOWLINE_LONG_TESTS=1.

// longTests reports whether the long versions were asked for.
func longTests() bool { return os.Getenv("BOWLINE_LONG_TESTS") == "1" }

// loadStats are the results of a load run.
type loadStats struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	firstFails []string
}

func (s *loadStats) fail(msg string) {
	s.failed.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.firstFails) < 5 {
		s.firstFails = append(s.firstFails, time.Now().Format("15:04:05.000")+" "+msg)
	}
}

// startLoad sends rate req/s (in 8 paced workers, pooled connections)
// through c until the returned stop is called, plus a burst of overlapping
// slow requests every second, one wider each time, so the client sidecar
// opens new connections (new mTLS handshakes with its current certificate)
// all along. stop waits for every request and returns the stats.
func startLoad(c *client, rate int) (stop func() *loadStats) {
	st := &loadStats{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	do := func(path string) {
		status, body, err := c.get(path, nil)
		switch {
		case err != nil:
			st.fail(err.Error())
		case status != 200 || body != "echo GET "+path:
			st.fail(fmt.Sprintf("%d %q", status, body))
		default:
			st.ok.Add(1)
		}
	}
	const workers = 8
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second * workers / time.Duration(rate))
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					do("/load")
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		width := 2
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			var bw sync.WaitGroup
			for range width {
				bw.Add(1)
				go func() { defer bw.Done(); do("/slow") }()
			}
			bw.Wait()
			width = min(width+2, 48)
		}
	}()
	return func() *loadStats {
		cancel()
		wg.Wait()
		return st
	}
}

// serialWatch polls sidecars' /certs and keeps every workload serial seen.
type serialWatch struct {
	mu      sync.Mutex
	serials map[string]map[string]bool // sidecar -> serials
	stop    func()
}

func watchSerials(t *testing.T, scs map[string]*meshSidecar) *serialWatch {
	w := &serialWatch{serials: map[string]map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			for name, sc := range scs {
				serial, _ := certsOf(t, sc.sidecar)
				w.mu.Lock()
				if w.serials[name] == nil {
					w.serials[name] = map[string]bool{}
				}
				if serial != "" {
					w.serials[name][serial] = true
				}
				w.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	w.stop = func() { cancel(); wg.Wait() }
	return w
}

// count is how many certificates the sidecar held.
func (w *serialWatch) count(name string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.serials[name])
}

// rotationMesh is prod/echo behind its sidecar and a prod/frontend client
// sending through its own sidecar, both holding certificates of one TTL.
type rotationMesh struct {
	*mesh
	backend          *xfccBackend
	server, clientSC *meshSidecar
	cl               *client
}

// startRotationMesh starts a rotationMesh with certTTL certificates and
// waits until the client gets answers.
func startRotationMesh(t *testing.T, certTTL time.Duration) *rotationMesh {
	t.Helper()
	r := &rotationMesh{backend: startXFCCBackend(t), mesh: startMesh(t)}
	r.server, _ = r.startEchoServer(t, r.backend, certTTL)
	r.clientSC = r.startSidecar(t, sidecarOptions{namespace: "prod", sa: "frontend", workload: "frontend", outbound: true, certTTL: certTTL})
	r.cl = newClient("prod/frontend", r.clientSC)
	t.Cleanup(r.cl.close)
	r.clientSC.waitConfig(t, "outbound|8080||"+meshHost)
	waitAnswer(t, r.cl, "/warm")
	return r
}

// TestCertificateRotationUnderLoad: both sidecars rotate their workload
// certificates several times under ~200 req/s and no request fails. Short:
// 4 s certificates for 15 s. Long (BOWLINE_LONG_TESTS=1): 2-minute
// certificates for 5 minutes.
func TestCertificateRotationUnderLoad(t *testing.T) {
	ttl, dur, wantRotations := 4*time.Second, 15*time.Second, 3
	if longTests() {
		ttl, dur, wantRotations = 2*time.Minute, 5*time.Minute, 4
	}
	r := startRotationMesh(t, ttl)
	backend, server, clientSC, cl := r.backend, r.server, r.clientSC, r.cl

	serials := watchSerials(t, map[string]*meshSidecar{"server": server, "client": clientSC})
	start := time.Now()
	stop := startLoad(cl, 200)
	time.Sleep(dur)
	st := stop()
	serials.stop()
	elapsed := time.Since(start)

	total := st.ok.Load() + st.failed.Load()
	t.Logf("certificate rotation under load: %d requests in %s (%.0f req/s), %d failed; certificates seen: server %d, client %d; client certificates that opened connections to the server sidecar: %d",
		total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), st.failed.Load(), serials.count("server"), serials.count("client"), backend.clientHashes())
	if st.failed.Load() > 0 {
		t.Errorf("%d of %d requests failed: %v", st.failed.Load(), total, st.firstFails)
	}
	for _, name := range []string{"server", "client"} {
		if n := serials.count(name); n < wantRotations+1 {
			t.Errorf("%s sidecar held %d certificates in %s, want at least %d (rotations at half of %s)", name, n, dur, wantRotations+1, ttl)
		}
	}
	// Short runs keep widening the bursts while certificates rotate every 2 s,
	// so rotated client certificates open connections. In the long run the
	// client sidecar's pool (idle connections kept for an hour) stops growing
	// after the first minute and its connections outlive every rotation, as
	// Envoy's do; zero failures and the serials above are the proof there.
	if !longTests() && backend.clientHashes() < 2 {
		t.Errorf("only %d client certificate(s) opened connections: rotated certificates were never used in a handshake", backend.clientHashes())
	}
	// A sanity floor only (busy CI cores under -race); the rate is logged above.
	if float64(total)/elapsed.Seconds() < 50 {
		t.Errorf("load too low to prove anything: %.0f req/s", float64(total)/elapsed.Seconds())
	}
}

// TestRootRotationUnderLoad follows Istio's plug-in CA root rotation on the
// CA directory while ~200 req/s flow through two sidecars: trust both roots,
// switch the signer to an intermediate of the new root, retire the old root.
// The control plane reloads its directory on change; proxies re-read the
// root file and refresh. No request may fail.
func TestRootRotationUnderLoad(t *testing.T) {
	ttl := 4 * time.Second
	r := startRotationMesh(t, ttl)
	backend, m, server, clientSC, cl := r.backend, r.mesh, r.server, r.clientSC, r.cl
	sidecars := map[string]*meshSidecar{"server": server, "client": clientSC}
	oldRoot := m.ca.TrustBundle()[0]

	now := time.Now()
	newRoot, err := ca.NewRoot(ca.RootParams{TrustDomain: "cluster.local", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	inter, err := ca.NewIntermediate(ca.IntermediateParams{Parent: newRoot, TrustDomain: "cluster.local", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	newDir := filepath.Join(t.TempDir(), "newca")
	if err := inter.Write(ca.WriteParams{Dir: newDir, Now: now}); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	stop := startLoad(cl, 200)
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	drainReload := func() {
		select {
		case <-m.reloaded:
		default:
		}
	}
	waitReload := func(step string) {
		t.Helper()
		select {
		case <-m.reloaded:
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: control plane did not reload the CA directory within 20s", step)
		}
	}
	// waitAll polls every sidecar's /certs until cond holds for each.
	waitAll := func(step string, within time.Duration, cond func(name, serial string, roots []string) bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for name, sc := range sidecars {
			for {
				serial, roots := certsOf(t, sc.sidecar)
				if cond(name, serial, roots) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: %s sidecar not there within %s (serial %s, roots %v)", step, name, within, serial, roots)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	time.Sleep(2 * time.Second) // load flowing under the old root

	// 1. Trust both roots.
	drainReload()
	t1 := time.Now()
	if _, err := ca.TrustRoots(ca.TrustParams{Dir: m.caDir, Roots: []*x509.Certificate{newRoot.Cert}, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	waitReload("trust")
	waitAll("trust", 30*time.Second, func(_, _ string, roots []string) bool {
		return len(roots) == 2 && roots[0] == serialHex(oldRoot) && roots[1] == serialHex(newRoot.Cert)
	})
	t.Logf("step 1: every sidecar trusts both roots %s after the edit", time.Since(t1).Round(time.Millisecond))
	time.Sleep(time.Second)

	// 2. Sign with an intermediate of the new root.
	drainReload()
	t2 := time.Now()
	if _, err := ca.SwitchSigner(ca.SwitchParams{Dir: m.caDir, From: newDir, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	waitReload("sign")
	before := map[string]string{}
	for name, sc := range sidecars {
		before[name], _ = certsOf(t, sc.sidecar)
	}
	// A certificate issued after the reload chains to the new root.
	waitAll("sign", 30*time.Second, func(name, serial string, _ []string) bool { return serial != before[name] })
	if issued, err := m.ca.Sign(ca.SignParams{CSR: mustCSR(t), Identity: ca.Identity{Namespace: "prod", ServiceAccount: "probe"}}); err != nil ||
		!issued.Chain[1].Equal(inter.Cert) {
		t.Fatalf("after the switch the CA does not sign with the new intermediate (%v)", err)
	}
	t.Logf("step 2: every sidecar holds a certificate of the new root %s after the edit", time.Since(t2).Round(time.Millisecond))
	time.Sleep(time.Second)

	// 3. Retire the old root.
	drainReload()
	t3 := time.Now()
	if _, err := ca.RetireRoots(ca.RetireParams{Dir: m.caDir, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	waitReload("retire")
	waitAll("retire", 30*time.Second, func(_, _ string, roots []string) bool {
		return len(roots) == 1 && roots[0] == serialHex(newRoot.Cert)
	})
	t.Logf("step 3: every sidecar trusts only the new root %s after the edit", time.Since(t3).Round(time.Millisecond))
	time.Sleep(3 * time.Second) // new handshakes under the new root only

	st := stop()
	stopped = true
	elapsed := time.Since(start)
	total := st.ok.Load() + st.failed.Load()
	t.Logf("root rotation under load: %d requests in %s (%.0f req/s), %d failed; client certificates that opened connections: %d",
		total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), st.failed.Load(), backend.clientHashes())
	if st.failed.Load() > 0 {
		t.Errorf("%d of %d requests failed: %v", st.failed.Load(), total, st.firstFails)
	}
	// A fresh connection after the rotation: new handshakes verify with the new root only.
	fresh := newClient("fresh", clientSC)
	defer fresh.close()
	if status, body, err := fresh.get("/after", nil); err != nil || status != 200 || body != "echo GET /after" {
		t.Errorf("after the rotation: %d %q (%v)", status, body, err)
	}
}

// mustCSR is a PEM CSR for a new P-256 key.
func mustCSR(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

package identity

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/bowline-mesh/bowline/internal/ca"
)

func TestRotateAt(t *testing.T) {
	issued := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		lifetime time.Duration
		ratio    float64
		jitter   float64
		r        float64
		want     time.Duration // after issuance
	}{
		{"half of 24h", 24 * time.Hour, 0.5, 0, 0.3, 12 * time.Hour},
		{"jitter low end rotates later", 24 * time.Hour, 0.5, 0.01, 0, 12*time.Hour + 14*time.Minute + 24*time.Second},
		{"jitter high end rotates sooner", 24 * time.Hour, 0.5, 0.01, 1, 12*time.Hour - 14*time.Minute - 24*time.Second},
		{"jitter middle", 24 * time.Hour, 0.5, 0.01, 0.5, 12 * time.Hour},
		{"short TTL", 2 * time.Second, 0.5, 0, 0, time.Second},
		{"ratio clamped at 1", time.Hour, 0.9, 0.5, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rotateAt(issued, issued.Add(tt.lifetime), tt.ratio, tt.jitter, tt.r).Sub(issued)
			if d := got - tt.want; d < -time.Millisecond || d > time.Millisecond {
				t.Fatalf("rotate after %s, want %s", got, tt.want)
			}
		})
	}
	if got := rotateAt(issued, issued.Add(-time.Hour), 0.5, 0, 0); !got.Equal(issued) {
		t.Errorf("expired certificate rotates at %s, want now", got)
	}
}

func TestBackoff(t *testing.T) {
	d := time.Second
	var got []time.Duration
	for range 7 {
		got = append(got, d)
		d = backoff(d, 30*time.Second)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("backoff sequence %v, want %v", got, want)
		}
	}
}

func rootPEM(env *caEnv) []byte { return ca.EncodeCertificates(env.ca.TrustBundle()...) }

func newAgent(t *testing.T, env *caEnv, token string, mod func(*Config)) *Agent {
	t.Helper()
	cfg := Config{CAAddress: env.addr, RootCert: rootPEM(env), Token: token, TTL: 2 * time.Second, Jitter: -1,
		RetryInitial: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func waitReady(t *testing.T, a *Agent) {
	t.Helper()
	select {
	case <-a.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("no certificate within 10s")
	}
}

// waitNewCert polls until Current returns a certificate other than old.
func waitNewCert(t *testing.T, a *Agent, old *tls.Certificate, within time.Duration) (*tls.Certificate, time.Time) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if cur, _ := a.Current(); cur != old {
			return cur, time.Now()
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("certificate not replaced within %s", within)
	return nil, time.Time{}
}

func TestRotatesBeforeExpiry(t *testing.T) {
	env := startCA(t, "", "127.0.0.1:0", nil, nil)
	a := newAgent(t, env, env.tokens.Mint("default", "web"), nil)
	runAgent(t, a)
	waitReady(t, a)
	first, pool := a.Current()
	if first == nil || pool == nil {
		t.Fatal("ready without a certificate")
	}
	if got := a.ID().String(); got != "spiffe://cluster.local/ns/default/sa/web" {
		t.Fatalf("ID %s", got)
	}
	if _, err := first.Leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("certificate does not verify to the bundle: %v", err)
	}
	cur := first
	for i := range 2 {
		next, at := waitNewCert(t, a, cur, 5*time.Second)
		if !at.Before(cur.Leaf.NotAfter) {
			t.Fatalf("rotation %d at %s, after the old certificate expired at %s", i+1, at, cur.Leaf.NotAfter)
		}
		if next.Leaf.SerialNumber.Cmp(cur.Leaf.SerialNumber) == 0 || next.PrivateKey == cur.PrivateKey {
			t.Fatal("rotation kept the serial or the key")
		}
		served, err := a.GetCertificate(nil)
		if err != nil || served != next {
			t.Fatal("GetCertificate does not serve the new certificate")
		}
		cur = next
	}
}

func TestCADownKeepsServingAndRetries(t *testing.T) {
	dir := t.TempDir()
	env := startCA(t, dir, "127.0.0.1:0", nil, nil)
	token := env.tokens.Mint("default", "web")
	log := &recorder{}
	a := newAgent(t, env, token, func(c *Config) { c.TTL = 4 * time.Second; c.Logger = slog.New(log) })
	runAgent(t, a)
	waitReady(t, a)
	first, _ := a.Current()

	env.stop()
	// Past the rotation time (2s) the CA is unreachable: the old certificate stays.
	deadline := time.Now().Add(5 * time.Second)
	for log.count("certificate request failed") < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := log.count("certificate request failed"); n < 3 {
		t.Fatalf("%d failed requests logged, want retries", n)
	}
	if cur, _ := a.Current(); cur != first {
		t.Fatal("certificate changed while the CA was down")
	}
	if !time.Now().Before(first.Leaf.NotAfter) {
		t.Fatal("test too slow: certificate expired before the CA came back")
	}

	// The CA comes back on the same address with the same root: a new certificate arrives.
	startCA(t, dir, env.addr, env.ca, env.tokens) // stops when the test ends
	next, at := waitNewCert(t, a, first, 5*time.Second)
	if !at.Before(first.Leaf.NotAfter) {
		t.Fatalf("new certificate at %s, after the old one expired at %s", at, first.Leaf.NotAfter)
	}
	if next.Leaf.NotAfter.Before(first.Leaf.NotAfter) {
		t.Fatal("new certificate expires before the old one")
	}
}

func TestWrongTokenNeverReady(t *testing.T) {
	env := startCA(t, "", "127.0.0.1:0", nil, nil)
	env.tokens.Mint("default", "web")
	log := &recorder{}
	a := newAgent(t, env, "not-a-token", func(c *Config) { c.Logger = slog.New(log) })
	runAgent(t, a)
	deadline := time.Now().Add(5 * time.Second)
	for log.count("certificate request failed") < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-a.Ready():
		t.Fatal("ready with a wrong token")
	default:
	}
	if cert, pool := a.Current(); cert != nil || pool != nil {
		t.Fatal("certificate served with a wrong token")
	}
	if _, err := a.GetCertificate(nil); err == nil || !strings.Contains(err.Error(), "no workload certificate") {
		t.Fatalf("GetCertificate err = %v", err)
	}
}

func TestUntrustedCARefused(t *testing.T) {
	env := startCA(t, "", "127.0.0.1:0", nil, nil)
	other, err := ca.New(ca.Config{})
	if err != nil {
		t.Fatal(err)
	}
	log := &recorder{}
	a := newAgent(t, env, env.tokens.Mint("default", "web"), func(c *Config) {
		c.RootCert = ca.EncodeCertificates(other.TrustBundle()...)
		c.Logger = slog.New(log)
	})
	runAgent(t, a)
	deadline := time.Now().Add(5 * time.Second)
	for log.count("certificate request failed") < 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if cert, _ := a.Current(); cert != nil {
		t.Fatal("accepted a certificate from a CA it does not trust")
	}
}

// TestTrustBundleFollowsRootRotation: the CA adds a second root; the agent's
// bundle holds both after its next rotation, and the CA stays reachable.
func TestTrustBundleFollowsRootRotation(t *testing.T) {
	dir := t.TempDir()
	env := startCA(t, dir, "127.0.0.1:0", nil, nil)
	a := newAgent(t, env, env.tokens.Mint("default", "web"), nil)
	runAgent(t, a)
	waitReady(t, a)
	if n := len(a.Bundle()); n != 1 {
		t.Fatalf("bundle has %d roots, want 1", n)
	}
	newRoot, err := ca.NewRoot(ca.RootParams{TrustDomain: "cluster.local", Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	both := append(env.ca.TrustBundle(), newRoot.Cert)
	if err := os.WriteFile(filepath.Join(dir, ca.RootCertFile), ca.EncodeCertificates(both...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := env.ca.Reload(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(a.Bundle()) != 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := a.Bundle()
	if len(got) != 2 || !got[1].Equal(newRoot.Cert) {
		t.Fatalf("bundle has %d roots after rotation, want old and new", len(got))
	}
	_, pool := a.Current()
	if _, err := newRoot.Cert.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
		t.Errorf("new root not in the pool: %v", err)
	}
}

func TestMutualTLSBetweenWorkloads(t *testing.T) {
	env := startCA(t, "", "127.0.0.1:0", nil, nil)
	web := newAgent(t, env, env.tokens.Mint("default", "web"), func(c *Config) { c.TTL = time.Hour })
	db := newAgent(t, env, env.tokens.Mint("prod", "db"), func(c *Config) { c.TTL = time.Hour })
	runAgent(t, web)
	runAgent(t, db)
	waitReady(t, web)
	waitReady(t, db)

	foreignCA := startCA(t, "", "127.0.0.1:0", nil, nil)
	stranger := newAgent(t, foreignCA, foreignCA.tokens.Mint("default", "web"), func(c *Config) { c.TTL = time.Hour })
	runAgent(t, stranger)
	waitReady(t, stranger)

	dbID := spiffeid.RequireFromString("spiffe://cluster.local/ns/prod/sa/db")
	tests := []struct {
		name    string
		server  *Agent
		client  *Agent
		match   spiffeid.Matcher
		wantErr string
		wantID  string
	}{
		{name: "web to db", server: db, client: web, match: spiffeid.MatchID(dbID), wantID: "spiffe://cluster.local/ns/default/sa/web"},
		{name: "web expects db but reaches web", server: web, client: web, match: spiffeid.MatchID(dbID), wantErr: "unexpected ID"},
		{name: "client from another CA refused", server: db, client: stranger, match: spiffeid.MatchAny(), wantErr: "certificate"},
		{name: "server from another CA refused", server: stranger, client: web, match: spiffeid.MatchAny(), wantErr: "certificate signed by unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotID, err := handshake(t, tt.server, tt.client, tt.match)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if gotID != tt.wantID {
				t.Fatalf("server saw %s, want %s", gotID, tt.wantID)
			}
		})
	}
}

// handshake runs a TLS handshake over loopback and returns the client ID the
// server verified, or the first error of either side.
func handshake(t *testing.T, server, client *Agent, match spiffeid.Matcher) (string, error) {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", server.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type result struct {
		id  string
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			res <- result{err: err}
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			res <- result{err: err}
			return
		}
		var raw [][]byte
		for _, pc := range tc.ConnectionState().PeerCertificates {
			raw = append(raw, pc.Raw)
		}
		id, err := server.PeerID(raw)
		res <- result{id: id.String(), err: err}
	}()
	conn, cerr := tls.Dial("tcp", l.Addr().String(), client.ClientConfig(match))
	if cerr == nil {
		cerr = conn.Handshake()
		// TLS 1.3: the server's verdict on our certificate arrives with the first read.
		if cerr == nil {
			_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, rerr := conn.Read(make([]byte, 1))
			if rerr != nil && !strings.Contains(rerr.Error(), "EOF") && !strings.Contains(rerr.Error(), "timeout") {
				cerr = rerr
			}
		}
		conn.Close()
	} else {
		l.Close()
	}
	r := <-res
	if cerr != nil {
		return "", cerr
	}
	return r.id, r.err
}

// TestRootFileChangeRefreshesEarly: with hour-long certificates, a new root
// appended to the root file reaches the bundle within seconds (no rotation
// due), even when the CA reloads its directory only after the agent first
// asked (it asks again until the CA answers the file's bundle).
func TestRootFileChangeRefreshesEarly(t *testing.T) {
	dir := t.TempDir()
	env := startCA(t, dir, "127.0.0.1:0", nil, nil)
	rootFile := filepath.Join(dir, ca.RootCertFile)
	a := newAgent(t, env, env.tokens.Mint("default", "web"), func(c *Config) {
		c.RootCert, c.RootCertFile, c.RootCertPoll, c.TTL = nil, rootFile, 50*time.Millisecond, time.Hour
	})
	runAgent(t, a)
	waitReady(t, a)
	first, _ := a.Current()
	newRoot, err := ca.NewRoot(ca.RootParams{TrustDomain: "cluster.local", Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.TrustRoots(ca.TrustParams{Dir: dir, Roots: []*x509.Certificate{newRoot.Cert}, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the agent has seen the file and asked: the CA still answers one root
	if err := env.ca.Reload(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(a.Bundle()) != 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := a.Bundle(); len(got) != 2 || !got[1].Equal(newRoot.Cert) {
		t.Fatalf("bundle has %d roots after the root file changed, want old and new", len(got))
	}
	if cur, _ := a.Current(); cur == first {
		t.Error("certificate not refreshed")
	}
}

// TestTokenFileReread: with TokenFile the token is read for every request,
// so a token rotated in place (a projected ServiceAccount token) is the one
// sent: a wrong token first is refused, the rewritten file's is accepted.
func TestTokenFileReread(t *testing.T) {
	env := startCA(t, "", "127.0.0.1:0", nil, nil)
	path := filepath.Join(t.TempDir(), "istio-token")
	if err := os.WriteFile(path, []byte("expired-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log := &recorder{}
	a := newAgent(t, env, "", func(c *Config) { c.TokenFile = path; c.Logger = slog.New(log) })
	runAgent(t, a)
	deadline := time.Now().Add(5 * time.Second)
	for log.count("certificate request failed") < 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if cert, _ := a.Current(); cert != nil {
		t.Fatal("certificate issued for the wrong token")
	}
	if err := os.WriteFile(path, []byte(env.tokens.Mint("default", "web")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitReady(t, a)
	cert, _ := a.Current()
	if got := cert.Leaf.URIs[0].String(); got != "spiffe://cluster.local/ns/default/sa/web" {
		t.Errorf("identity %s", got)
	}
}

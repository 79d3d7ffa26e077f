package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	pb "istio.io/api/security/v1alpha1"
)

// Defaults of Config.
const (
	// DefaultGracePeriodRatio rotates when half the lifetime remains (istio-agent's SECRET_GRACE_PERIOD_RATIO).
	DefaultGracePeriodRatio = 0.5
	// DefaultJitter spreads rotations by ±1% of the lifetime (istio-agent's SECRET_GRACE_PERIOD_RATIO_JITTER).
	DefaultJitter = 0.01
	// DefaultRetryInitial is the first wait after a failed request; it doubles up to DefaultRetryMax.
	DefaultRetryInitial = time.Second
	// DefaultRetryMax bounds the wait between failed requests.
	DefaultRetryMax = 30 * time.Second
	// DefaultRequestTimeout bounds one certificate request.
	DefaultRequestTimeout = 10 * time.Second
	// DefaultRootCertPoll is how often RootCertFile is re-read for a new bundle.
	DefaultRootCertPoll = 5 * time.Second
	// bundleRetries bounds the early refreshes made after RootCertFile
	// changed while the CA still answers another bundle (it has not
	// reloaded its directory yet).
	bundleRetries = 6
)

// Config configures an Agent.
type Config struct {
	// CAAddress is the CA's HOST:PORT. Required.
	CAAddress string
	// ServerName is the name verified in the CA's serving certificate; the host
	// of CAAddress when empty (istiod.istio-system.svc is always valid).
	ServerName string
	// RootCert is PEM with the root(s) that verify the CA's serving
	// certificate. RootCert or RootCertFile is required.
	RootCert []byte
	// RootCertFile is read when RootCert is empty. It is then re-read every
	// RootCertPoll: when its roots change (a root rotation: the new root
	// added, later the old one removed), the agent verifies the CA with them
	// and asks for a new certificate at once, so the new bundle is in force
	// without waiting for the next rotation.
	RootCertFile string
	// RootCertPoll is how often RootCertFile is re-read; DefaultRootCertPoll
	// when zero, never when negative.
	RootCertPoll time.Duration
	// Token is the bootstrap token, sent as "authorization: Bearer <token>".
	Token string
	// TokenFile, when set, holds the token instead; it is read before every
	// request, as the kubelet rotates a projected ServiceAccount token in
	// place (Istio's agent does the same with istio-token).
	TokenFile string
	// TrustDomain, when set, must be the trust domain of the issued identity.
	TrustDomain string
	// TTL is the requested certificate lifetime; the CA's default (24h) when zero.
	TTL time.Duration
	// GracePeriodRatio: rotate when less than this share of the lifetime remains.
	GracePeriodRatio float64
	// Jitter is added to GracePeriodRatio, drawn uniformly from [-Jitter, +Jitter].
	// Negative means none.
	Jitter float64
	// RetryInitial is the first wait after a failure; it doubles up to RetryMax.
	RetryInitial time.Duration
	// RetryMax bounds the wait between failures.
	RetryMax time.Duration
	// RequestTimeout bounds one certificate request.
	RequestTimeout time.Duration
	// Logger receives INFO/DEBUG logs; discarded when nil.
	Logger *slog.Logger
	// Clock is the time source; the system clock when nil.
	Clock Clock
	// Rand draws the jitter in [0,1); math/rand/v2's Float64 when nil.
	Rand func() float64
}

// Source is what consumers of workload certificates need. Agent implements it;
// consumers declare their own copy of this interface.
type Source interface {
	// Current returns the certificate (with key and chain) and the trust
	// bundle in force, or nil, nil before the first certificate arrived.
	Current() (*tls.Certificate, *x509.CertPool)
}

var (
	_ Source            = (*Agent)(nil)
	_ x509svid.Source   = (*Agent)(nil)
	_ x509bundle.Source = (*Agent)(nil)
)

// state is one issued certificate with its bundle; replaced whole, never mutated.
type state struct {
	cert     *tls.Certificate
	svid     *x509svid.SVID
	id       spiffeid.ID
	roots    []*x509.Certificate
	pool     *x509.CertPool
	issuedAt time.Time
	rotateAt time.Time
}

// Agent fetches and rotates a workload's certificate. Build it with New, start
// it with Run; Current and the tls hooks are safe for concurrent use.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	clock Clock
	// caRoots verify the CA's serving certificate (RootCert, re-read from
	// RootCertFile), beside the bundle in force.
	caRoots   atomic.Pointer[[]*x509.Certificate]
	cur       atomic.Pointer[state]
	ready     chan struct{}
	readyOnce sync.Once
	// refresh asks Run for a certificate now; it carries the roots the
	// bundle should become (from RootCertFile), or nil.
	refresh chan []*x509.Certificate
}

// New checks cfg and builds an Agent. It starts nothing.
func New(cfg Config) (*Agent, error) {
	if cfg.CAAddress == "" {
		return nil, errors.New("identity: no CA address")
	}
	host, _, err := net.SplitHostPort(cfg.CAAddress)
	if err != nil {
		return nil, fmt.Errorf("identity: CA address %q: %w", cfg.CAAddress, err)
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if len(cfg.RootCert) == 0 && cfg.RootCertFile != "" {
		if cfg.RootCert, err = os.ReadFile(cfg.RootCertFile); err != nil {
			return nil, fmt.Errorf("identity: read CA root: %w", err)
		}
	}
	if len(cfg.RootCert) == 0 {
		return nil, errors.New("identity: no CA root certificate to verify the CA with")
	}
	roots, err := parseCertificates([]byte(cfg.RootCert))
	if err != nil {
		return nil, fmt.Errorf("identity: CA root: %w", err)
	}
	if cfg.TrustDomain != "" {
		if _, err := spiffeid.TrustDomainFromString(cfg.TrustDomain); err != nil {
			return nil, fmt.Errorf("identity: trust domain %q: %w", cfg.TrustDomain, err)
		}
	}
	if cfg.GracePeriodRatio <= 0 || cfg.GracePeriodRatio >= 1 {
		cfg.GracePeriodRatio = DefaultGracePeriodRatio
	}
	if cfg.Jitter == 0 {
		cfg.Jitter = DefaultJitter
	}
	cfg.Jitter = max(cfg.Jitter, 0)
	if cfg.RetryInitial <= 0 {
		cfg.RetryInitial = DefaultRetryInitial
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Rand == nil {
		cfg.Rand = mrand.Float64
	}
	if cfg.RootCertPoll == 0 {
		cfg.RootCertPoll = DefaultRootCertPoll
	}
	a := &Agent{cfg: cfg, log: cfg.Logger, clock: cfg.Clock, ready: make(chan struct{}), refresh: make(chan []*x509.Certificate, 1)}
	a.caRoots.Store(&roots)
	return a, nil
}

// Refresh asks Run for a new certificate (and bundle) now instead of at the
// next rotation. It never blocks.
func (a *Agent) Refresh() { a.requestRefresh(nil) }

func (a *Agent) requestRefresh(want []*x509.Certificate) {
	for {
		select {
		case a.refresh <- want:
			return
		default:
		}
		select { // replace a pending request with this newer one
		case <-a.refresh:
		default:
		}
	}
}

// Ready is closed once the first certificate is in place.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Run requests a certificate, then keeps rotating it until ctx ends. A failed
// request is retried with exponential backoff (RetryInitial doubling to
// RetryMax); meanwhile the current certificate keeps being served. Run
// returns nil when ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	if a.cfg.RootCertFile != "" && a.cfg.RootCertPoll > 0 {
		wctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); a.watchRootFile(wctx) }()
		defer wg.Wait()
		defer cancel()
	}
	wait := a.cfg.RetryInitial
	// want is the bundle RootCertFile asks for; tries counts the early
	// refreshes left until the CA answers it.
	var want []*x509.Certificate
	tries := 0
	for {
		var next time.Duration
		st, err := a.fetch(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			next = wait
			wait = backoff(wait, a.cfg.RetryMax)
			attrs := []any{slog.String(attrError, err.Error()), slog.Duration(attrRetryIn, next)}
			if cur := a.cur.Load(); cur != nil {
				attrs = append(attrs, slog.Time(attrNotAfter, cur.svid.Certificates[0].NotAfter))
			}
			a.log.Info("certificate request failed", attrs...)
		default:
			wait = a.cfg.RetryInitial
			a.cur.Store(st)
			a.readyOnce.Do(func() { close(a.ready) })
			next = st.rotateAt.Sub(a.clock.Now())
			a.log.Info("certificate rotated", slog.String(attrID, st.id.String()), slog.Time(attrNotAfter, st.svid.Certificates[0].NotAfter),
				slog.Time(attrRotateAt, st.rotateAt), slog.Int(attrRoots, len(st.roots)))
			if want != nil && !sameCerts(st.roots, want) && tries > 0 {
				// The root file changed but the CA has not reloaded yet: ask again soon.
				tries--
				next = min(next, wait)
				wait = backoff(wait, a.cfg.RetryMax)
			} else {
				want, tries = nil, 0
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.clock.After(max(next, 0)):
		case w := <-a.refresh:
			if w != nil {
				want, tries = w, bundleRetries
			}
			wait = a.cfg.RetryInitial
		}
	}
}

// watchRootFile re-reads RootCertFile every RootCertPoll; when its roots
// change they verify the CA from then on and a refresh is requested, so the
// new bundle is fetched at once.
func (a *Agent) watchRootFile(ctx context.Context) {
	last := *a.caRoots.Load()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.clock.After(a.cfg.RootCertPoll):
		}
		b, err := os.ReadFile(a.cfg.RootCertFile)
		if err != nil {
			continue // kept: the file may be replaced right now
		}
		roots, err := parseCertificates(b)
		if err != nil || sameCerts(roots, last) {
			continue
		}
		last = roots
		a.caRoots.Store(&roots)
		a.log.Info("root certificate file changed, refreshing", slog.Int(attrRoots, len(roots)))
		a.requestRefresh(roots)
	}
}

// sameCerts reports whether a and b hold the same certificates, in any order.
func sameCerts(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
outer:
	for _, x := range a {
		for _, y := range b {
			if x.Equal(y) {
				continue outer
			}
		}
		return false
	}
	return true
}

// fetch generates a key, sends a CSR and checks the answer.
func (a *Agent) fetch(ctx context.Context) (*state, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, fmt.Errorf("create csr: %w", err)
	}
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})

	pool := x509.NewCertPool()
	for _, r := range *a.caRoots.Load() {
		pool.AddCert(r)
	}
	if cur := a.cur.Load(); cur != nil {
		for _, r := range cur.roots { // a CA whose root rotated stays reachable
			pool.AddCert(r)
		}
	}
	conn, err := grpc.NewClient(a.cfg.CAAddress, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		RootCAs: pool, ServerName: a.cfg.ServerName, MinVersion: tls.VersionTLS12,
	})))
	if err != nil {
		return nil, fmt.Errorf("dial CA %s: %w", a.cfg.CAAddress, err)
	}
	defer conn.Close()
	rctx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout)
	defer cancel()
	token := a.cfg.Token
	if a.cfg.TokenFile != "" {
		b, err := os.ReadFile(a.cfg.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("read CA token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token != "" {
		rctx = metadata.AppendToOutgoingContext(rctx, "authorization", "Bearer "+token)
	}
	resp, err := pb.NewIstioCertificateServiceClient(conn).CreateCertificate(rctx, &pb.IstioCertificateRequest{
		Csr: string(csrPEM), ValidityDuration: int64(a.cfg.TTL / time.Second),
	})
	if err != nil {
		return nil, fmt.Errorf("CreateCertificate at %s: %w", a.cfg.CAAddress, err)
	}
	return a.accept(resp.GetCertChain(), key)
}

// accept turns a CreateCertificate answer into a state: the last element is
// the trust bundle (one or more roots), the others are the leaf and
// intermediates. The leaf must carry our key and verify to the bundle.
func (a *Agent) accept(certChain []string, key *ecdsa.PrivateKey) (*state, error) {
	if len(certChain) < 2 {
		return nil, fmt.Errorf("CA answered %d cert_chain elements, want the leaf and the root at least", len(certChain))
	}
	var chain []*x509.Certificate
	for i, p := range certChain[:len(certChain)-1] {
		certs, err := parseCertificates([]byte(p))
		if err != nil {
			return nil, fmt.Errorf("cert_chain[%d]: %w", i, err)
		}
		chain = append(chain, certs...)
	}
	roots, err := parseCertificates([]byte(certChain[len(certChain)-1]))
	if err != nil {
		return nil, fmt.Errorf("cert_chain root: %w", err)
	}
	leaf := chain[0]
	if !key.PublicKey.Equal(leaf.PublicKey) {
		return nil, errors.New("CA returned a certificate for another key")
	}
	svid := &x509svid.SVID{Certificates: chain, PrivateKey: key}
	id, err := x509svid.IDFromCert(leaf)
	if err != nil {
		return nil, fmt.Errorf("issued certificate: %w", err)
	}
	svid.ID = id
	if a.cfg.TrustDomain != "" && id.TrustDomain().Name() != a.cfg.TrustDomain {
		return nil, fmt.Errorf("issued identity %s is not in trust domain %s", id, a.cfg.TrustDomain)
	}
	now := a.clock.Now()
	if _, _, err := x509svid.Verify(chain, x509bundle.FromX509Authorities(id.TrustDomain(), roots), x509svid.WithTime(now)); err != nil {
		return nil, fmt.Errorf("issued certificate does not verify to the returned roots: %w", err)
	}
	tc := &tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, c := range chain {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	return &state{
		cert: tc, svid: svid, id: id, roots: roots, pool: pool, issuedAt: now,
		rotateAt: rotateAt(now, leaf.NotAfter, a.cfg.GracePeriodRatio, a.cfg.Jitter, a.cfg.Rand()),
	}, nil
}

// Current implements Source.
func (a *Agent) Current() (*tls.Certificate, *x509.CertPool) {
	st := a.cur.Load()
	if st == nil {
		return nil, nil
	}
	return st.cert, st.pool
}

// ID is the workload's SPIFFE ID; zero before the first certificate.
func (a *Agent) ID() spiffeid.ID {
	if st := a.cur.Load(); st != nil {
		return st.id
	}
	return spiffeid.ID{}
}

// Bundle returns the roots in force (old and new during a root rotation).
func (a *Agent) Bundle() []*x509.Certificate {
	if st := a.cur.Load(); st != nil {
		return append([]*x509.Certificate(nil), st.roots...)
	}
	return nil
}

// GetX509SVID implements go-spiffe's x509svid.Source.
func (a *Agent) GetX509SVID() (*x509svid.SVID, error) {
	st := a.cur.Load()
	if st == nil {
		return nil, errors.New("no workload certificate yet")
	}
	return st.svid, nil
}

// GetX509BundleForTrustDomain implements go-spiffe's x509bundle.Source: the
// roots in force, for the workload's own trust domain only.
func (a *Agent) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	st := a.cur.Load()
	if st == nil {
		return nil, errors.New("no trust bundle yet")
	}
	if td != st.id.TrustDomain() {
		return nil, fmt.Errorf("no trust bundle for trust domain %q (this workload trusts %q)", td, st.id.TrustDomain())
	}
	return x509bundle.FromX509Authorities(td, st.roots), nil
}

func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}

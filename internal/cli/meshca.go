package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/bowline-mesh/bowline/internal/ca"
	"github.com/bowline-mesh/bowline/internal/xds/server"
)

// maxWorkloadCertTTL bounds --workload-cert-ttl (the CA's maximum, 90 days).
const maxWorkloadCertTTL = ca.DefaultMaxTTL

// meshCA is the CA a control plane runs (discovery, up): the signer, the
// bootstrap tokens it accepts, and the root file proxies verify it with.
type meshCA struct {
	ca     *ca.CA
	tokens *ca.Tokens
	// authn authenticates CA callers: tokens, unless replaced (on
	// Kubernetes: TokenReview of service account tokens).
	authn    ca.Authenticator
	rootFile string
	log      *slog.Logger
	watch    *ca.DirWatcher
}

// newMeshCA loads or creates the CA in dir (Istio's cacerts layout).
func newMeshCA(dir, trustDomain string, ttl time.Duration, logger *slog.Logger) (*meshCA, error) {
	if ttl <= 0 || ttl > maxWorkloadCertTTL {
		return nil, fmt.Errorf("--workload-cert-ttl %s: want more than 0 and at most %s", ttl, maxWorkloadCertTTL)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ca dir: %w", err)
	}
	c, err := ca.New(ca.Config{Dir: dir, TrustDomain: trustDomain, DefaultTTL: ttl, Logger: logger})
	if err != nil {
		return nil, err
	}
	w, err := ca.NewDirWatcher(c, ca.DefaultWatchInterval)
	if err != nil {
		return nil, err
	}
	tokens := ca.NewTokens()
	return &meshCA{ca: c, tokens: tokens, authn: tokens, rootFile: filepath.Join(dir, "root-cert.pem"), log: logger, watch: w}, nil
}

// run reloads the CA directory when its files change (root rotation steps,
// a new plug-in CA) and on SIGHUP, until ctx ends.
func (m *meshCA) run(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				m.log.Info("sighup: reloading the ca directory")
				m.watch.Trigger()
			}
		}
	}()
	err := m.watch.Run(ctx)
	wg.Wait()
	return err
}

// runBeside runs the CA directory watcher while run runs, and returns
// run's error (or the watcher's).
func (m *meshCA) runBeside(ctx context.Context, run func(context.Context) error) error {
	return runBeside(ctx, run, m.run)
}

// xdsTLS is the TLS config of an xDS port that also serves the CA: a serving
// certificate for the address host (and istiod.istio-system.svc), client
// certificates verified against the trust bundle.
func (m *meshCA) xdsTLS(addrs ...string) *tls.Config {
	hosts := []string{ca.DefaultServingHost, "127.0.0.1", "localhost"}
	for _, a := range addrs {
		if h, _, err := net.SplitHostPort(a); err == nil && h != "" {
			if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
				hosts = append(hosts, h)
			}
		}
	}
	return server.MeshTLS(m.ca.NewServingCertificate(hosts).GetCertificate, m.ca.TrustBundle)
}

// register serves IstioCertificateService on a gRPC server (the xDS port).
func (m *meshCA) register(r grpc.ServiceRegistrar) error {
	return ca.RegisterService(r, ca.ServiceConfig{CA: m.ca, Authenticator: m.authn, Logger: m.log})
}

// writeToken mints a token for namespace/sa and writes it to path with mode
// 0600 (tokens never travel on command lines).
func (m *meshCA) writeToken(path, namespace, sa string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("token dir: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(m.tokens.Mint(namespace, sa)+"\n"), 0o600); err != nil {
		return fmt.Errorf("write token: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write token: %w", err)
	}
	return nil
}

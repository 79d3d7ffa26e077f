package ca

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// DefaultAddress is where Server listens: Istio's secure port, loopback.
const DefaultAddress = "127.0.0.1:15012"

// DefaultServingHost is always among the serving certificate's names, as
// istio-agent dials the CA as istiod.istio-system.svc.
const DefaultServingHost = "istiod.istio-system.svc"

// shutdownGrace bounds how long Run waits for calls to end on shutdown.
const shutdownGrace = 5 * time.Second

// ServerConfig configures a Server.
type ServerConfig struct {
	// Address is HOST:PORT to listen on (port 0 picks one); DefaultAddress when empty.
	Address string
	// CA signs the certificates, including the server's own. Required.
	CA *CA
	// Authenticator identifies callers (Tokens in local mode). Required.
	Authenticator Authenticator
	// Hosts are extra names (DNS or IP) for the serving certificate, beside the
	// address host (when not unspecified) and DefaultServingHost.
	Hosts []string
	// Logger receives INFO/DEBUG logs; discarded when nil.
	Logger *slog.Logger
}

// Server serves IstioCertificateService over TLS with a certificate the CA
// issues itself. Build it with NewServer and start it with Run.
type Server struct {
	cfg      ServerConfig
	log      *slog.Logger
	serving  *ServingCertificate
	listened chan struct{}
	once     sync.Once
	addr     net.Addr
}

// NewServer checks cfg and builds a Server. It starts nothing.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.CA == nil {
		return nil, errors.New("ca server: no CA")
	}
	if cfg.Authenticator == nil {
		return nil, errors.New("ca server: no authenticator")
	}
	if cfg.Address == "" {
		cfg.Address = DefaultAddress
	}
	host, _, err := net.SplitHostPort(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("ca server address %q: %w", cfg.Address, err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	hosts := []string{DefaultServingHost}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		hosts = append(hosts, host)
	}
	hosts = append(hosts, cfg.Hosts...)
	return &Server{cfg: cfg, log: cfg.Logger, serving: cfg.CA.NewServingCertificate(hosts), listened: make(chan struct{})}, nil
}

// Listening is closed once Run has opened its listener; Addr is valid then.
func (s *Server) Listening() <-chan struct{} { return s.listened }

// Addr is the listening address, once Listening is closed.
func (s *Server) Addr() net.Addr {
	select {
	case <-s.listened:
		return s.addr
	default:
		return nil
	}
}

// Run serves until ctx ends, then stops gracefully (bounded by a grace period).
func (s *Server) Run(ctx context.Context) error {
	if _, err := s.serving.Certificate(); err != nil {
		return err
	}
	l, err := net.Listen("tcp", s.cfg.Address)
	if err != nil {
		return fmt.Errorf("listen ca: %w", err)
	}
	s.addr = l.Addr()
	s.once.Do(func() { close(s.listened) })
	s.log.Info("ca serving", slog.String(attrAddress, s.addr.String()))

	creds := credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.serving.GetCertificate})
	gs := grpc.NewServer(grpc.Creds(creds))
	if err := RegisterService(gs, ServiceConfig{CA: s.cfg.CA, Authenticator: s.cfg.Authenticator, Logger: s.log}); err != nil {
		l.Close()
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve ca: %w", err)
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(shutdownGrace):
		gs.Stop()
		<-stopped
	}
	<-errc
	return nil
}

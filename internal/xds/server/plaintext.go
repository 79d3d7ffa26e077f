package server

import (
	"fmt"
	"net"
	"net/http"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
)

// extraListeners are the optional ports beside xDS and debug: plaintext
// xDS (istiod's 15010) and monitoring (istiod's 15014).
type extraListeners struct {
	plain, mon net.Listener
}

// listenExtra opens the optional listeners the config asks for.
func (s *Server) listenExtra() (extraListeners, error) {
	var e extraListeners
	var err error
	if s.cfg.PlaintextXDSAddress != "" {
		if e.plain, err = net.Listen("tcp", s.cfg.PlaintextXDSAddress); err != nil {
			return e, fmt.Errorf("listen plaintext xds: %w", err)
		}
	}
	if s.cfg.MonitoringAddress != "" {
		if e.mon, err = net.Listen("tcp", s.cfg.MonitoringAddress); err != nil {
			e.close()
			return extraListeners{}, fmt.Errorf("listen monitoring: %w", err)
		}
	}
	return e, nil
}

func (e extraListeners) close() {
	if e.plain != nil {
		e.plain.Close()
	}
	if e.mon != nil {
		e.mon.Close()
	}
}

// monitoringHandler serves what istiod's monitoring port serves: metrics,
// the version, and readiness (for the kubelet's probe). Nothing on it
// changes state or reveals configuration, so it may listen on the pod's
// address.
func (s *Server) monitoringHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /ready", s.readyz)
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(s.cfg.Version + "\n"))
	})
	return mux
}

// withoutSecrets is the plaintext xDS port's stream interceptor: requests
// for secrets (SDS: a gateway's credentialName certificates and keys) are
// dropped before the ADS server sees them, so no private key is ever sent
// to an unauthenticated client. istiod likewise gives a client that did
// not authenticate over TLS no secrets; every other type is served as on
// the TLS port.
func withoutSecrets(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, secretlessStream{ss})
}

// secretlessStream skips SDS requests on receive.
type secretlessStream struct{ grpc.ServerStream }

func (s secretlessStream) RecvMsg(m any) error {
	for {
		if err := s.ServerStream.RecvMsg(m); err != nil {
			return err
		}
		if !isSecretRequest(m) {
			return nil
		}
	}
}

// isSecretRequest reports whether m asks for secrets.
func isSecretRequest(m any) bool {
	switch r := m.(type) {
	case *discovery.DiscoveryRequest:
		return r.GetTypeUrl() == resourcev3.SecretType
	case *discovery.DeltaDiscoveryRequest:
		return r.GetTypeUrl() == resourcev3.SecretType
	}
	return false
}

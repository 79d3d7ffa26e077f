package server

import (
	"crypto/tls"
	"crypto/x509"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// adsService prefixes the xDS services' full method names.
const adsService = "/envoy.service.discovery.v3."

// requireClientCert refuses xDS streams whose caller presented no verified
// client certificate: proxies authenticate with their workload certificate.
// Other services on the port (the CA, which authenticates by token) pass.
func requireClientCert(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if strings.HasPrefix(info.FullMethod, adsService) {
		p, ok := peer.FromContext(ss.Context())
		if !ok {
			return status.Error(codes.Unauthenticated, "no peer")
		}
		ti, ok := p.AuthInfo.(credentials.TLSInfo)
		if !ok || len(ti.State.VerifiedChains) == 0 {
			return status.Error(codes.Unauthenticated, "xDS needs a workload certificate from the mesh CA")
		}
	}
	return handler(srv, ss)
}

// MeshTLS returns the xDS server's TLS config: the serving certificate from
// getCert, and client certificates verified against the trust bundle roots()
// returns at each handshake (so a CA root rotation takes effect). A client
// without a certificate may connect (the CA service on the same port
// authenticates by token); requireClientCert refuses it xDS.
func MeshTLS(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), roots func() []*x509.Certificate) *tls.Config {
	base := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: getCert, ClientAuth: tls.VerifyClientCertIfGiven,
		NextProtos: []string{"h2"}}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		c.GetConfigForClient = nil
		pool := x509.NewCertPool()
		for _, r := range roots() {
			pool.AddCert(r)
		}
		c.ClientCAs = pool
		return c, nil
	}
	return base
}

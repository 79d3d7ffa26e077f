package ca

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"
)

// ServiceConfig configures the IstioCertificateService implementation.
type ServiceConfig struct {
	// CA signs the certificates. Required.
	CA *CA
	// Authenticator identifies callers. Required.
	Authenticator Authenticator
	// Logger receives INFO/DEBUG logs; discarded when nil.
	Logger *slog.Logger
}

// ImpersonatedIdentityKey is the IstioCertificateRequest metadata field
// naming the SPIFFE ID a caller asks a certificate for on behalf of another
// workload (Istio's security.ImpersonatedIdentity).
const ImpersonatedIdentityKey = "ImpersonatedIdentity"

// service implements Istio's IstioCertificateService.
type service struct {
	pb.UnimplementedIstioCertificateServiceServer
	ca    *CA
	authn Authenticator
	log   *slog.Logger
}

var _ pb.IstioCertificateServiceServer = (*service)(nil)

// RegisterService registers IstioCertificateService on r, so that a gRPC
// server of another component (discovery's, like istiod's port 15012) can
// serve the CA API too.
func RegisterService(r grpc.ServiceRegistrar, cfg ServiceConfig) error {
	if cfg.CA == nil {
		return errors.New("certificate service: no CA")
	}
	if cfg.Authenticator == nil {
		return errors.New("certificate service: no authenticator")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	pb.RegisterIstioCertificateServiceServer(r, &service{ca: cfg.CA, authn: cfg.Authenticator, log: cfg.Logger})
	return nil
}

// CreateCertificate authenticates the caller, signs the CSR for the caller's
// identity and returns the chain: leaf, intermediates, and last the trust
// bundle (every root, concatenated PEM), as istio-agent expects.
func (s *service) CreateCertificate(ctx context.Context, req *pb.IstioCertificateRequest) (*pb.IstioCertificateResponse, error) {
	id, err := s.authn.Authenticate(ctx)
	if err != nil {
		s.log.Debug("ca request unauthenticated", slog.String(attrError, err.Error()))
		return nil, status.Errorf(codes.Unauthenticated, "authenticate: %v", err)
	}
	// Istio's ImpersonatedIdentity asks for another identity than the
	// caller's (node agents on behalf of pods). Bowline trusts no node
	// accounts, so it is refused as istiod refuses it without
	// CA_TRUSTED_NODE_ACCOUNTS: an opaque error, the reason in the log.
	if want := req.GetMetadata().GetFields()[ImpersonatedIdentityKey].GetStringValue(); want != "" {
		own, err := id.SPIFFEID(s.ca.td)
		if err != nil || want != own.String() {
			s.log.Info("ca impersonation refused", slog.String(attrIdentity, want), slog.String(attrCaller, id.String()))
			return nil, status.Error(codes.Unauthenticated, "request impersonation authentication failure")
		}
	}
	secs := req.GetValidityDuration()
	if secs > math.MaxInt64/int64(time.Second) {
		return nil, status.Errorf(codes.InvalidArgument, "validity_duration %d seconds is too large", secs)
	}
	issued, err := s.ca.Sign(SignParams{CSR: []byte(req.GetCsr()), Identity: id, TTL: time.Duration(secs) * time.Second})
	if errors.Is(err, ErrInvalidRequest) {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "sign: %v", err)
	}
	leaf := issued.Leaf()
	s.log.Info("certificate issued", slog.String(attrIdentity, leaf.URIs[0].String()),
		slog.Duration(attrTTL, leaf.NotAfter.Sub(s.ca.cfg.Now()).Round(time.Second)), slog.Time(attrNotAfter, leaf.NotAfter))
	resp := &pb.IstioCertificateResponse{}
	for _, c := range issued.Chain {
		resp.CertChain = append(resp.CertChain, string(EncodeCertificates(c)))
	}
	resp.CertChain = append(resp.CertChain, strings.TrimSpace(string(EncodeCertificates(issued.Roots...)))+"\n")
	return resp, nil
}

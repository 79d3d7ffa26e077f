// Package authztest is a test authorization service speaking Envoy's
// envoy.service.auth.v3 gRPC API and its HTTP protocol, with the behaviour
// of Istio's samples/extauthz server: a request carrying x-ext-authz: allow
// is allowed (so is one whose source principal names the allowed service
// account, gRPC only); any other is denied 403 with the sample's body. Both
// answers carry x-ext-authz-check-result (allowed or denied) and
// x-ext-authz-additional-header-override. It remembers the checks it saw.
//
// For tests only; it must not be imported by non-test code.
package authztest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// The sample's header names and texts.
const (
	CheckHeader    = "x-ext-authz"
	AllowValue     = "allow"
	ResultHeader   = "x-ext-authz-check-result"
	OverrideHeader = "x-ext-authz-additional-header-override"
	// OverrideGRPCValue is what the gRPC service sets OverrideHeader to.
	OverrideGRPCValue = "grpc-additional-header-override-value"
	ResultAllowed     = "allowed"
	ResultDenied      = "denied"
)

// DenyBody is the body of a denial.
var DenyBody = fmt.Sprintf("denied by ext_authz for not found header `%s: %s` in the request", CheckHeader, AllowValue)

// Server serves the gRPC and HTTP protocols on two loopback ports.
type Server struct {
	// AllowServiceAccount is the service account whose requests the gRPC
	// service allows without the header (the sample's -allow_service_account).
	AllowServiceAccount string

	grpcAddr, httpAddr string
	mu                 sync.Mutex
	grpcSrv            *grpc.Server
	httpSrv            *http.Server
	wg                 sync.WaitGroup
	checks             []*authv3.CheckRequest
	httpChecks         []*http.Request
	httpBodies         []string
}

// Start serves on free loopback ports until Stop.
func Start() (*Server, error) {
	s := &Server{AllowServiceAccount: "a"}
	if err := s.listen("127.0.0.1:0", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) listen(grpcAddr, httpAddr string) error {
	gl, err := net.Listen("tcp", grpcAddr)
	if err != nil {
		return err
	}
	hl, err := net.Listen("tcp", httpAddr)
	if err != nil {
		_ = gl.Close()
		return err
	}
	s.mu.Lock()
	s.grpcAddr, s.httpAddr = gl.Addr().String(), hl.Addr().String()
	s.grpcSrv = grpc.NewServer()
	authv3.RegisterAuthorizationServer(s.grpcSrv, authService{s})
	s.httpSrv = &http.Server{Handler: http.HandlerFunc(s.serveHTTP), ReadHeaderTimeout: 5 * time.Second}
	gs, hs := s.grpcSrv, s.httpSrv
	s.mu.Unlock()
	s.wg.Add(2)
	go func() { defer s.wg.Done(); _ = gs.Serve(gl) }()
	go func() { defer s.wg.Done(); _ = hs.Serve(hl) }()
	return nil
}

// GRPCAddr and HTTPAddr are the services' HOST:PORT.
func (s *Server) GRPCAddr() string { s.mu.Lock(); defer s.mu.Unlock(); return s.grpcAddr }

// HTTPAddr is the HTTP service's HOST:PORT.
func (s *Server) HTTPAddr() string { s.mu.Lock(); defer s.mu.Unlock(); return s.httpAddr }

// Stop stops both services (connections are closed); Restart brings them
// back on the same ports.
func (s *Server) Stop() {
	s.mu.Lock()
	gs, hs := s.grpcSrv, s.httpSrv
	s.grpcSrv, s.httpSrv = nil, nil
	s.mu.Unlock()
	if gs != nil {
		gs.Stop()
	}
	if hs != nil {
		_ = hs.Close()
	}
	s.wg.Wait()
}

// Restart serves again on the ports of before Stop.
func (s *Server) Restart() error {
	return s.listen(s.GRPCAddr(), s.HTTPAddr())
}

// Checks returns the gRPC checks received so far.
func (s *Server) Checks() []*authv3.CheckRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*authv3.CheckRequest, len(s.checks))
	for i, c := range s.checks {
		out[i] = proto.Clone(c).(*authv3.CheckRequest)
	}
	return out
}

// HTTPChecks returns the HTTP check requests received so far (method,
// URL, Host and headers) and their bodies.
func (s *Server) HTTPChecks() ([]*http.Request, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*http.Request(nil), s.httpChecks...), append([]string(nil), s.httpBodies...)
}

type authService struct{ s *Server }

func (a authService) Check(_ context.Context, rq *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	a.s.mu.Lock()
	a.s.checks = append(a.s.checks, proto.Clone(rq).(*authv3.CheckRequest))
	sa := a.s.AllowServiceAccount
	a.s.mu.Unlock()
	attrs := rq.GetAttributes()
	var allow bool
	if v, ok := attrs.GetRequest().GetHttp().GetHeaders()[CheckHeader]; ok {
		allow = v == AllowValue
	} else {
		allow = strings.HasSuffix(attrs.GetSource().GetPrincipal(), "/sa/"+sa)
	}
	hdr := func(k, v string) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}}
	}
	if allow {
		return &authv3.CheckResponse{Status: &status.Status{Code: int32(codes.OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{Headers: []*corev3.HeaderValueOption{
				hdr(ResultHeader, ResultAllowed), hdr(OverrideHeader, OverrideGRPCValue)}}}}, nil
	}
	return &authv3.CheckResponse{Status: &status.Status{Code: int32(codes.PermissionDenied)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status: &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden}, Body: DenyBody,
			Headers: []*corev3.HeaderValueOption{hdr(ResultHeader, ResultDenied), hdr(OverrideHeader, OverrideGRPCValue)}}}}, nil
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.httpChecks = append(s.httpChecks, r.Clone(context.Background()))
	s.httpBodies = append(s.httpBodies, string(body))
	s.mu.Unlock()
	w.Header().Set(OverrideHeader, r.Header.Get(OverrideHeader))
	if r.Header.Get(CheckHeader) == AllowValue {
		w.Header().Set(ResultHeader, ResultAllowed)
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set(ResultHeader, ResultDenied)
	w.WriteHeader(http.StatusForbidden)
	_, _ = io.WriteString(w, DenyBody)
}

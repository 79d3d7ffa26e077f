package extauthz

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// grpcChecker asks over envoy.service.auth.v3.Authorization/Check on the
// pool's connection to the service, looked up once when the filter is made
// (not under the pool's lock per check); connErr says why there is none.
type grpcChecker struct {
	conn    *grpc.ClientConn
	connErr error
}

func newGRPCChecker(p *Pool, cfg *Config) *grpcChecker {
	authority := cfg.Authority
	if authority == "" {
		authority = cfg.Cluster
	}
	conn, err := p.conn(cfg.Cluster, authority)
	return &grpcChecker{conn: conn, connErr: err}
}

func (g *grpcChecker) check(ctx context.Context, cfg *Config, r *Request) (Decision, error) {
	if g.connErr != nil {
		return Decision{}, g.connErr
	}
	resp, err := authv3.NewAuthorizationClient(g.conn).Check(ctx, CheckRequest(cfg, r))
	if err != nil {
		return Decision{}, ctxErr(ctx, fmt.Errorf("check: %w", err))
	}
	return fromCheckResponse(resp)
}

// CheckRequest is the envoy.service.auth.v3.CheckRequest of r under cfg
// (exported for the network filter and tests).
func CheckRequest(cfg *Config, r *Request) *authv3.CheckRequest {
	attrs := &authv3.AttributeContext{
		Source:            &authv3.AttributeContext_Peer{Address: sockAddr(r.Source), Principal: r.SourcePrincipal},
		Destination:       &authv3.AttributeContext_Peer{Address: sockAddr(r.Destination), Principal: r.DestinationPrincipal},
		ContextExtensions: r.ContextExtensions,
	}
	if cfg.IncludePeerCertificate {
		attrs.Source.Certificate = r.SourceCertificate
	}
	if cfg.IncludeTLSSession && r.SNI != "" {
		attrs.TlsSession = &authv3.AttributeContext_TLSSession{Sni: r.SNI}
	}
	if r.Method != "" {
		h := &authv3.AttributeContext_HttpRequest{
			Id: r.ID, Method: r.Method, Path: r.Path, Host: r.Host, Scheme: r.Scheme, Protocol: r.Protocol,
			Size: r.Size, Headers: map[string]string{},
		}
		if i := strings.IndexByte(r.Path, '?'); i >= 0 {
			h.Query = r.Path[i+1:]
		}
		h.Headers[":authority"], h.Headers[":method"], h.Headers[":path"] = r.Host, r.Method, r.Path
		if r.Scheme != "" {
			h.Headers[":scheme"] = r.Scheme
		}
		for k, vs := range r.Headers {
			name := strings.ToLower(k)
			if !headerAllowed(name, cfg.AllowedHeaders, cfg.DisallowedHeaders, true) {
				continue
			}
			h.Headers[name] = strings.Join(vs, ",")
		}
		if cfg.Body != nil && r.Body != nil {
			if cfg.Body.PackAsBytes {
				h.RawBody = r.Body
			} else {
				h.Body = strings.ToValidUTF8(string(r.Body), string(utf8.RuneError))
			}
			partial := "false"
			if r.Partial {
				partial = "true"
			}
			h.Headers[HeaderPartialBody] = partial
		}
		attrs.Request = &authv3.AttributeContext_Request{Time: timestamppb.New(time.Now()), Http: h}
	}
	for _, ns := range cfg.MetadataNamespaces {
		v, ok := r.Metadata[ns]
		if !ok {
			continue
		}
		s, err := structpb.NewStruct(v)
		if err != nil {
			continue
		}
		if attrs.MetadataContext == nil {
			attrs.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{}}
		}
		attrs.MetadataContext.FilterMetadata[ns] = s
	}
	return &authv3.CheckRequest{Attributes: attrs}
}

func sockAddr(a netip.AddrPort) *corev3.Address {
	if !a.IsValid() {
		return nil
	}
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: a.Addr().Unmap().String(), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(a.Port())}}}}
}

// fromCheckResponse reads a CheckResponse as Envoy's gRPC client does: an
// OK status allows with ok_response's edits; any other status denies with
// denied_response (403 when it names none); error_response is an error.
func fromCheckResponse(resp *authv3.CheckResponse) (Decision, error) {
	if er := resp.GetErrorResponse(); er != nil {
		return Decision{}, fmt.Errorf("authorization service answered an error (status %d)", er.GetStatus().GetCode())
	}
	if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
		d := Decision{Status: OK}
		ok := resp.GetOkResponse()
		for _, o := range ok.GetHeaders() {
			h := Header{Key: strings.ToLower(o.GetHeader().GetKey()), Value: headerValue(o)}
			if h.Key == "" {
				continue
			}
			if appendHeader(o) {
				d.AppendHeaders = append(d.AppendHeaders, h)
			} else {
				d.SetHeaders = append(d.SetHeaders, h)
			}
		}
		for _, k := range ok.GetHeadersToRemove() {
			// Envoy never lets the service remove pseudo headers or Host.
			if k = strings.ToLower(k); k != "" && !strings.HasPrefix(k, ":") && k != "host" {
				d.RemoveHeaders = append(d.RemoveHeaders, k)
			}
		}
		for _, o := range ok.GetResponseHeadersToAdd() {
			if k := strings.ToLower(o.GetHeader().GetKey()); k != "" {
				d.ResponseHeaders = append(d.ResponseHeaders, Header{Key: k, Value: headerValue(o)})
			}
		}
		return d, nil
	}
	d := Decision{Status: Denied, Code: http.StatusForbidden}
	dr := resp.GetDeniedResponse()
	if c := int(dr.GetStatus().GetCode()); c >= 100 && c <= 599 {
		d.Code = c
	}
	d.Body = dr.GetBody()
	for _, o := range dr.GetHeaders() {
		if k := strings.ToLower(o.GetHeader().GetKey()); k != "" {
			d.ResponseHeaders = append(d.ResponseHeaders, Header{Key: k, Value: headerValue(o)})
		}
	}
	return d, nil
}

func headerValue(o *corev3.HeaderValueOption) string {
	if v := o.GetHeader().GetValue(); v != "" {
		return v
	}
	return string(o.GetHeader().GetRawValue())
}

// appendHeader reads a HeaderValueOption of ok_response.headers: append
// (deprecated) when set, else append_action, where this message's default
// is to overwrite (Envoy documents append as false here).
func appendHeader(o *corev3.HeaderValueOption) bool {
	if a := o.GetAppend(); a != nil {
		return a.GetValue()
	}
	return false
}

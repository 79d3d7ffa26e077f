package authz

import (
	"net/netip"
	"strings"
)

// Headers gives the values of a request header, case-insensitively.
// net/http.Header satisfies it.
type Headers interface {
	Values(name string) []string
}

// Request holds the attributes RBAC matches. For network (TCP) RBAC only the
// connection fields are set; HTTP matchers then never match, as in Envoy.
// The engine never modifies a Request.
type Request struct {
	// Method is the HTTP method (":method").
	Method string
	// Host is the authority (":authority", Host header), port included if sent.
	Host string
	// Path is ":path" after the connection manager's normalization
	// (NormalizePath), query included; url_path matchers ignore the query.
	Path string
	// Scheme is ":scheme" ("http" or "https"); optional.
	Scheme string
	// Headers are the request headers; nil for TCP.
	Headers Headers

	// Source is the downstream peer address (direct_remote_ip, source_ip).
	Source netip.AddrPort
	// Remote is the original client address (remote_ip): the x-forwarded-for
	// address the HCM trusts, or Source when there is none (the zero value
	// means Source).
	Remote netip.Addr
	// Destination is the local address the connection was accepted on
	// (the original destination under transparent capture).
	Destination netip.AddrPort
	// SNI is the TLS server name the client requested, "" for plaintext.
	SNI string
	// Principal is the peer certificate identity for mTLS connections: its
	// URI SAN (spiffe://td/ns/NS/sa/SA), else its first DNS SAN, else its
	// subject. Authenticated says whether a peer certificate was verified.
	Principal     string
	Authenticated bool

	// Metadata is the dynamic metadata of earlier filters by filter name
	// (envoy.filters.http.jwt_authn -> {"payload": claims}), values in
	// encoding/json's shapes: string, float64, bool, nil, []any, map[string]any.
	Metadata map[string]map[string]any
}

// header returns the value Envoy's header matchers see: the pseudo headers
// from the request fields, others joined with "," when repeated.
func (r *Request) header(name string) (string, bool) {
	switch name {
	case ":authority", "host":
		return r.Host, r.Host != ""
	case ":method":
		return r.Method, r.Method != ""
	case ":path":
		return r.Path, r.Path != ""
	case ":scheme":
		return r.Scheme, r.Scheme != ""
	}
	if r.Headers == nil {
		return "", false
	}
	vs := r.Headers.Values(name)
	switch len(vs) {
	case 0:
		return "", false
	case 1:
		return vs[0], true
	}
	return strings.Join(vs, ","), true
}

// pathOnly is Path without query and fragment: what url_path matches.
func (r *Request) pathOnly() string {
	p := r.Path
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	return p
}

func (r *Request) remote() netip.Addr {
	if r.Remote.IsValid() {
		return r.Remote
	}
	return r.Source.Addr()
}

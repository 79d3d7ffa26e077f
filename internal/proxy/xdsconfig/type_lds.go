package xdsconfig

import (
	"net/netip"
	"strings"
	"time"

	"github.com/bowline-mesh/bowline/internal/proxy/authz"
	"github.com/bowline-mesh/bowline/internal/proxy/extauthz"
)

// Listener is a checked envoy.config.listener.v3.Listener.
type Listener struct {
	// Name is the xDS resource name.
	Name string
	// Address is the socket address the listener owns (or is reached by, when
	// BindToPort is false).
	Address netip.AddrPort
	// Inbound is set for listeners of traffic to the local workload
	// (reporter=destination in metrics): traffic_direction INBOUND, or, when
	// the control plane leaves it unspecified, a name like Istio's inbound
	// listeners (inbound|<port>, virtualInbound).
	Inbound bool
	// BindToPort is false for virtual listeners reached only by hand-off from a
	// use_original_dst listener or from the explicit HTTP proxy.
	BindToPort bool
	// UseOriginalDst hands accepted connections to the listener that matches
	// their original destination (SO_ORIGINAL_DST).
	UseOriginalDst bool
	// OriginalDst is set by the envoy.filters.listener.original_dst listener
	// filter: filter chains match the connection's original destination
	// (SO_ORIGINAL_DST) and the listener keeps the connection (Istio's
	// virtualInbound on 15006), unlike UseOriginalDst, which hands it off.
	OriginalDst bool
	// TLSInspector is set by the envoy.filters.listener.tls_inspector
	// listener filter: the first bytes of a connection tell TLS (with its SNI
	// and ALPN) from plaintext for filter_chain_match.
	TLSInspector bool
	// HTTPInspector is set by the envoy.filters.listener.http_inspector
	// listener filter: a plaintext connection whose first bytes are an
	// HTTP/1.x request line has application protocol "http/1.0" or
	// "http/1.1", one opening with the HTTP/2 preface "h2c", for
	// filter_chain_match.application_protocols (Istio's protocol sniffing).
	HTTPInspector bool
	// TLSInspectorDisabled and HTTPInspectorDisabled are the inspectors'
	// filter_disabled: connections to a destination port they match skip
	// the inspector (nil: none do).
	TLSInspectorDisabled, HTTPInspectorDisabled *PortPredicate
	// InspectTimeout bounds how long the inspector waits for a client's
	// first bytes (listener_filters_timeout; Envoy's 15 s when unset, 0 no
	// limit). On timeout the connection goes on as plaintext when
	// ContinueOnInspectTimeout (Istio sets it: server-first protocols), else
	// it is closed.
	InspectTimeout           time.Duration
	ContinueOnInspectTimeout bool
	// FilterChains are matched by destination port, then transport protocol,
	// then application protocols (Envoy's order, most specific wins).
	FilterChains []FilterChain
	// DefaultChain is used when no chain matches; may be nil.
	DefaultChain *FilterChain
}

// Transport protocols of filter_chain_match, as the tls_inspector reports them.
const (
	TransportTLS       = "tls"
	TransportRawBuffer = "raw_buffer"
)

// ChainFor returns the filter chain for a plaintext connection whose
// destination port is port, or nil. Listeners with a tls_inspector use
// ChainForConn.
func (l *Listener) ChainFor(port uint16) *FilterChain {
	return l.ChainForConn(port, "", TransportRawBuffer, nil)
}

// ChainForConn returns the filter chain for a connection with Envoy's
// filter_chain_match order: among the chains of the most specific matching
// destination_port (exact, else unset), those of the most specific
// server_names (the SNI exactly, else the longest matching "*.suffix",
// else unset), those of the most specific transport_protocol (exact, else
// unset), then those whose application_protocols intersect alpn (else
// unset); the first of them wins. sni is the TLS client's server name ("":
// none); transport is TransportTLS or TransportRawBuffer; alpn are the
// protocols a TLS client offered. Without a match it is the default chain
// (may be nil).
func (l *Listener) ChainForConn(port uint16, sni, transport string, alpn []string) *FilterChain {
	best, bestScore := (*FilterChain)(nil), -1
	sni = strings.ToLower(sni)
	for i := range l.FilterChains {
		fc := &l.FilterChains[i]
		score := 0
		switch fc.DestinationPort {
		case uint32(port):
			score += 1 << 20
		case 0:
		default:
			continue
		}
		if len(fc.ServerNames) > 0 {
			n := serverNameScore(fc.ServerNames, sni)
			if n == 0 {
				continue
			}
			score += n << 3
		}
		switch fc.TransportProtocol {
		case transport:
			score += 2
		case "":
		default:
			continue
		}
		if len(fc.ApplicationProtocols) > 0 {
			if !intersects(fc.ApplicationProtocols, alpn) {
				continue
			}
			score++
		}
		if score > bestScore {
			best, bestScore = fc, score
		}
	}
	if best != nil {
		return best
	}
	return l.DefaultChain
}

// serverNameScore ranks how specifically names match sni: above every
// wildcard for an exact name, else 1 + the length of the longest matching
// "*.suffix" (which needs at least one more label), 0 for no match.
func serverNameScore(names []string, sni string) int {
	best := 0
	for _, n := range names {
		if n == sni {
			return 1 << 16
		}
		if suffix, ok := strings.CutPrefix(n, "*"); ok && len(sni) > len(suffix) && strings.HasSuffix(sni, suffix) {
			best = max(best, 1+len(suffix))
		}
	}
	return best
}

// NeedsInspection reports whether choosing a chain, or serving one, needs
// the connection's first bytes or a TLS handshake.
func (l *Listener) NeedsInspection() bool {
	return l.TLSInspector || l.HTTPInspector || l.hasTLSChain()
}

func (l *Listener) hasTLSChain() bool {
	for i := range l.FilterChains {
		if l.FilterChains[i].TLS != nil {
			return true
		}
	}
	return l.DefaultChain != nil && l.DefaultChain.TLS != nil
}

// InspectsTLS reports whether a connection to destination port port has
// its first bytes read for a TLS ClientHello: by the tls_inspector unless
// its filter_disabled matches the port, and without one when a chain
// terminates TLS (a plaintext client is refused there, not served).
func (l *Listener) InspectsTLS(port uint16) bool {
	if l.TLSInspector {
		return !l.TLSInspectorDisabled.Match(port)
	}
	return l.hasTLSChain()
}

// InspectsHTTP reports whether the http_inspector reads the first bytes
// of a plaintext connection to destination port port.
func (l *Listener) InspectsHTTP(port uint16) bool {
	return l.HTTPInspector && !l.HTTPInspectorDisabled.Match(port)
}

// PortPredicate is a checked ListenerFilterChainMatchPredicate of the
// kinds Istio generates: destination port ranges combined with or, and,
// not, and any.
type PortPredicate struct {
	// Any matches every connection (any_match).
	Any bool
	// Start and End are a destination_port_range [Start, End) when End > 0.
	Start, End uint32
	// Or, And and Not combine predicates (or_match, and_match, not_match).
	Or, And []PortPredicate
	Not     *PortPredicate
}

// Match reports whether a connection to destination port port matches; a
// nil predicate matches nothing.
func (p *PortPredicate) Match(port uint16) bool {
	switch {
	case p == nil:
		return false
	case p.Any:
		return true
	case p.End > 0:
		return uint32(port) >= p.Start && uint32(port) < p.End
	case p.Not != nil:
		return !p.Not.Match(port)
	case p.Or != nil:
		for i := range p.Or {
			if p.Or[i].Match(port) {
				return true
			}
		}
		return false
	case p.And != nil:
		for i := range p.And {
			if !p.And[i].Match(port) {
				return false
			}
		}
		return true
	}
	return false
}

func intersects(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

// FilterChain is one filter chain: exactly one of HTTP and TCP is set.
type FilterChain struct {
	// Name is the chain's name, for logs.
	Name string
	// DestinationPort is filter_chain_match.destination_port; 0 matches any.
	DestinationPort uint32
	// TransportProtocol is filter_chain_match.transport_protocol ("", "tls"
	// or "raw_buffer"); "" matches any.
	TransportProtocol string
	// ApplicationProtocols is filter_chain_match.application_protocols: a
	// TLS client must offer one of them (ALPN), or the http_inspector have
	// detected one of them; empty matches any.
	ApplicationProtocols []string
	// ServerNames is filter_chain_match.server_names, lower case: the TLS
	// client's SNI must be one of them or fall under a "*.suffix" one;
	// empty matches any.
	ServerNames []string
	// TLS is the chain's DownstreamTlsContext: connections are TLS
	// terminated before the filters; nil for plaintext.
	TLS *TLSContext
	// HTTP is the HttpConnectionManager, for HTTP chains.
	HTTP *HTTPConnectionManager
	// TCP is the tcp_proxy, for TCP chains.
	TCP *TCPProxy
	// NetworkRBAC are the envoy.filters.network.rbac and
	// envoy.filters.network.ext_authz filters before the tcp_proxy, in
	// order: every one must allow a connection before the upstream is dialed.
	NetworkRBAC []NetworkAuthz
}

// NetworkAuthz is one authorization filter of a TCP chain: RBAC or ext_authz.
type NetworkAuthz struct {
	// RBAC is the compiled envoy.filters.network.rbac, or nil.
	RBAC *authz.Engine
	// ExtAuthz is the checked envoy.filters.network.ext_authz, or nil.
	ExtAuthz *extauthz.Config
}

// HTTPConnectionManager is a checked HttpConnectionManager.
type HTTPConnectionManager struct {
	// StatPrefix is the HCM's stat_prefix.
	StatPrefix string
	// RDSName is the RouteConfiguration name fetched over ADS; empty when
	// Routes is inline.
	RDSName string
	// Routes is the inline route_config, or nil with RDSName.
	Routes *RouteConfig
	// Filters are the http_filters in order; the last one is the router.
	Filters []HTTPFilter
	// StreamIdleTimeout is stream_idle_timeout; 0 means the proxy default.
	StreamIdleTimeout time.Duration
	// MaxRequestHeadersBytes is max_request_headers_kb in bytes: the limit
	// on a request's head (request line and headers); 0 means Envoy's
	// default of 60 KiB. Past it the request is answered 431.
	MaxRequestHeadersBytes int
	// MaxHeadersCount is common_http_protocol_options.max_headers_count;
	// 0 means Envoy's default of 100. Past it the request is answered 431.
	MaxHeadersCount int
	// Paths are normalize_path, merge_slashes and
	// path_with_escaped_slashes_action, applied once per request before the
	// filters and the router; the result is also the upstream :path.
	Paths authz.PathOptions
	// UseRemoteAddress is use_remote_address: the peer, not x-forwarded-for,
	// is the client address (remote.ip).
	UseRemoteAddress bool
	// XFFNumTrustedHops is xff_num_trusted_hops.
	XFFNumTrustedHops uint32
	// Tracing is the HCM's tracing config, nil when it does not trace.
	Tracing *Tracing
	// ServerName is the server header value: server_name, "envoy" when unset.
	ServerName string
	// ServerHeader is server_header_transformation: when ServerName is set
	// on responses.
	ServerHeader ServerHeaderMode
	// AccessLogs are the HCM's access_log entries; none leaves access
	// logging to the proxy's --access-log setting.
	AccessLogs []AccessLog
	// Stats is the istio.stats filter's config (also in Filters); nil
	// records every standard metric with the standard tags.
	Stats *IstioStats
}

// ServerHeaderMode is an HCM's server_header_transformation.
type ServerHeaderMode int

// Server header modes, as Envoy's.
const (
	// ServerOverwrite sets the server header on every response (Envoy's default).
	ServerOverwrite ServerHeaderMode = iota
	// ServerAppendIfAbsent sets it only when the upstream sent none.
	ServerAppendIfAbsent
	// ServerPassThrough leaves what the upstream sent, and sets none.
	ServerPassThrough
)

// TCPProxy is a checked tcp_proxy filter.
type TCPProxy struct {
	// StatPrefix is the tcp_proxy's stat_prefix.
	StatPrefix string
	// Clusters are the weighted destinations (one with weight 1 for `cluster`).
	Clusters []WeightedCluster
	// IdleTimeout closes idle connections; 0 means Envoy's default of one hour.
	IdleTimeout time.Duration
	// Stats is the istio.stats network filter before the tcp_proxy: how
	// the chain's connections are recorded in the TCP metrics (istio_tcp_*);
	// nil records the standard ones.
	Stats *IstioStats
}

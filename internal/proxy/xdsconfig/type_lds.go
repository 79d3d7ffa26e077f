package xdsconfig

import (
	"net/netip"
	"time"

	"github.com/bowline-mesh/bowline/internal/proxy/authz"
)

// Listener is a checked envoy.config.listener.v3.Listener.
type Listener struct {
	// Name is the xDS resource name.
	Name string
	// Address is the socket address the listener owns (or is reached by, when
	// BindToPort is false).
	Address netip.AddrPort
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
	// FilterChains are matched in order by destination port.
	FilterChains []FilterChain
	// DefaultChain is used when no chain matches; may be nil.
	DefaultChain *FilterChain
}

// ChainFor returns the filter chain for a connection whose destination port
// is port, or nil.
func (l *Listener) ChainFor(port uint16) *FilterChain {
	var wildcard *FilterChain
	for i := range l.FilterChains {
		fc := &l.FilterChains[i]
		switch fc.DestinationPort {
		case uint32(port):
			return fc
		case 0:
			if wildcard == nil {
				wildcard = fc
			}
		}
	}
	if wildcard != nil {
		return wildcard
	}
	return l.DefaultChain
}

// FilterChain is one filter chain: exactly one of HTTP and TCP is set.
type FilterChain struct {
	// Name is the chain's name, for logs.
	Name string
	// DestinationPort is filter_chain_match.destination_port; 0 matches any.
	DestinationPort uint32
	// HTTP is the HttpConnectionManager, for HTTP chains.
	HTTP *HTTPConnectionManager
	// TCP is the tcp_proxy, for TCP chains.
	TCP *TCPProxy
	// NetworkRBAC are the envoy.filters.network.rbac filters before the
	// tcp_proxy, in order: every one must allow a connection before the
	// upstream is dialed.
	NetworkRBAC []*authz.Engine
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
	// Paths are normalize_path, merge_slashes and
	// path_with_escaped_slashes_action, applied once per request before the
	// filters and the router; the result is also the upstream :path.
	Paths authz.PathOptions
	// UseRemoteAddress is use_remote_address: the peer, not x-forwarded-for,
	// is the client address (remote.ip).
	UseRemoteAddress bool
	// XFFNumTrustedHops is xff_num_trusted_hops.
	XFFNumTrustedHops uint32
}

// TCPProxy is a checked tcp_proxy filter.
type TCPProxy struct {
	// StatPrefix is the tcp_proxy's stat_prefix.
	StatPrefix string
	// Clusters are the weighted destinations (one with weight 1 for `cluster`).
	Clusters []WeightedCluster
	// IdleTimeout closes idle connections; 0 means Envoy's default of one hour.
	IdleTimeout time.Duration
}

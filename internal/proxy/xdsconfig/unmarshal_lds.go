package xdsconfig

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	httpinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	origdstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Type URLs of the filters the proxy implements.
const (
	typeHCM      = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	typeTCPProxy = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
	typeRouter   = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
	typeFault    = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
	typeCORS     = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"
	// typeDFPFilter is envoy.filters.http.dynamic_forward_proxy's config.
	typeDFPFilter = "type.googleapis.com/envoy.extensions.filters.http.dynamic_forward_proxy.v3.FilterConfig"
)

// defaultInspectTimeout is Envoy's listener_filters_timeout when unset.
const defaultInspectTimeout = 15 * time.Second

// UnmarshalListener checks a Listener and converts it. The error names the
// listener and the offending field.
func UnmarshalListener(l *listenerv3.Listener) (*Listener, error) {
	out, err := unmarshalListener(l)
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", l.GetName(), err)
	}
	return out, nil
}

func unmarshalListener(l *listenerv3.Listener) (*Listener, error) {
	if err := checkFields(l, "", "name", "address", "bind_to_port", "use_original_dst", "filter_chains",
		"default_filter_chain", "traffic_direction", "listener_filters", "continue_on_listener_filters_timeout",
		"listener_filters_timeout", "access_log", "stat_prefix", "per_connection_buffer_limit_bytes",
		"api_listener"); err != nil {
		return nil, err
	}
	if l.GetName() == "" {
		return nil, fmt.Errorf("field name: empty")
	}
	out := &Listener{Name: l.GetName(), BindToPort: true}
	switch l.GetTrafficDirection() {
	case corev3.TrafficDirection_INBOUND:
		out.Inbound = true
	case corev3.TrafficDirection_UNSPECIFIED:
		out.Inbound = strings.HasPrefix(out.Name, "inbound") || out.Name == "virtualInbound"
	}
	if l.GetApiListener() != nil {
		// api_listener is for proxyless clients; the proxy ignores it.
		out.BindToPort = false
		return out, nil
	}
	sa := l.GetAddress().GetSocketAddress()
	if sa == nil {
		return nil, fmt.Errorf("field address.socket_address: missing")
	}
	if err := checkFields(sa, "address.socket_address", "address", "port_value", "protocol", "ipv4_compat"); err != nil {
		return nil, err
	}
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return nil, fmt.Errorf("field address.socket_address.address: %w", err)
	}
	if sa.GetPortValue() > 65535 {
		return nil, fmt.Errorf("field address.socket_address.port_value: %d out of range", sa.GetPortValue())
	}
	out.Address = netip.AddrPortFrom(ip, uint16(sa.GetPortValue()))
	if b := l.GetBindToPort(); b != nil {
		out.BindToPort = b.GetValue()
	}
	out.UseOriginalDst = l.GetUseOriginalDst().GetValue()
	out.InspectTimeout, out.ContinueOnInspectTimeout = defaultInspectTimeout, l.GetContinueOnListenerFiltersTimeout()
	if t := l.GetListenerFiltersTimeout(); t != nil {
		if err := t.CheckValid(); err != nil || t.AsDuration() < 0 {
			return nil, fmt.Errorf("field listener_filters_timeout: invalid duration")
		}
		out.InspectTimeout = t.AsDuration()
	}
	for i, lf := range l.GetListenerFilters() {
		path := fmt.Sprintf("listener_filters[%d]", i)
		if err := checkFields(lf, path, "name", "typed_config", "filter_disabled"); err != nil {
			return nil, err
		}
		var disabled *PortPredicate
		if fd := lf.GetFilterDisabled(); fd != nil {
			p, err := unmarshalPortPredicate(fd, path+".filter_disabled", 0)
			if err != nil {
				return nil, err
			}
			disabled = p
		}
		if tc := lf.GetTypedConfig(); tc != nil {
			var cfg proto.Message
			switch lf.GetName() {
			case "envoy.filters.listener.original_dst":
				cfg = &origdstv3.OriginalDst{}
			case "envoy.filters.listener.tls_inspector":
				cfg = &tlsinspectorv3.TlsInspector{}
			case "envoy.filters.listener.http_inspector":
				cfg = &httpinspectorv3.HttpInspector{}
			}
			if cfg != nil {
				if err := tc.UnmarshalTo(cfg); err != nil {
					return nil, fmt.Errorf("field %s.typed_config: %w", path, err)
				}
			}
		}
		switch lf.GetName() {
		case "envoy.filters.listener.original_dst":
			// Transparent capture (netns/pod): match chains on SO_ORIGINAL_DST.
			if disabled != nil {
				return nil, fmt.Errorf("field %s.filter_disabled: unsupported for %s", path, lf.GetName())
			}
			out.OriginalDst = true
		case "envoy.filters.listener.tls_inspector":
			// PERMISSIVE: chains match transport_protocol and ALPN, read from
			// the first bytes without consuming them.
			out.TLSInspector, out.TLSInspectorDisabled = true, disabled
		case "envoy.filters.listener.http_inspector":
			// Protocol sniffing of undeclared ports: chains match
			// application_protocols http/1.0, http/1.1, h2c (sniff.go).
			out.HTTPInspector, out.HTTPInspectorDisabled = true, disabled
		default:
			return nil, fmt.Errorf("field %s: filter %q unsupported", path, lf.GetName())
		}
	}
	for i, fc := range l.GetFilterChains() {
		c, err := unmarshalFilterChain(fc, fmt.Sprintf("filter_chains[%d]", i))
		if err != nil {
			return nil, err
		}
		out.FilterChains = append(out.FilterChains, *c)
	}
	if fc := l.GetDefaultFilterChain(); fc != nil {
		c, err := unmarshalFilterChain(fc, "default_filter_chain")
		if err != nil {
			return nil, err
		}
		out.DefaultChain = c
	}
	for i := range out.FilterChains {
		fc := &out.FilterChains[i]
		// raw_buffer is what a connection is when no inspector says TLS
		// (Envoy's default); application protocols come from the TLS ALPN
		// or the http_inspector.
		if (fc.TransportProtocol == TransportTLS || len(fc.ServerNames) > 0) && !out.TLSInspector {
			return nil, fmt.Errorf("field filter_chains[%d].filter_chain_match: transport_protocol tls and server_names need the envoy.filters.listener.tls_inspector listener filter", i)
		}
		if len(fc.ApplicationProtocols) > 0 && !out.TLSInspector && !out.HTTPInspector {
			return nil, fmt.Errorf("field filter_chains[%d].filter_chain_match: application_protocols need the envoy.filters.listener.tls_inspector or http_inspector listener filter", i)
		}
	}
	if len(out.FilterChains) == 0 && out.DefaultChain == nil && !out.UseOriginalDst {
		return nil, fmt.Errorf("field filter_chains: empty")
	}
	return out, nil
}

func unmarshalFilterChain(fc *listenerv3.FilterChain, path string) (*FilterChain, error) {
	if err := checkFields(fc, path, "name", "filter_chain_match", "filters", "metadata", "transport_socket"); err != nil {
		return nil, err
	}
	out := &FilterChain{Name: fc.GetName()}
	if m := fc.GetFilterChainMatch(); m != nil {
		if err := checkFields(m, path+".filter_chain_match", "destination_port", "transport_protocol", "application_protocols", "server_names"); err != nil {
			return nil, err
		}
		for j, n := range m.GetServerNames() {
			n = strings.ToLower(n)
			if n == "" || strings.Contains(n[1:], "*") || (strings.HasPrefix(n, "*") && !strings.HasPrefix(n, "*.")) {
				return nil, fmt.Errorf("field %s.filter_chain_match.server_names[%d]: invalid server name %q (a name or *.suffix)", path, j, n)
			}
			out.ServerNames = append(out.ServerNames, n)
		}
		out.DestinationPort = m.GetDestinationPort().GetValue()
		switch tp := m.GetTransportProtocol(); tp {
		case "", TransportTLS, TransportRawBuffer:
			out.TransportProtocol = tp
		default:
			return nil, fmt.Errorf("field %s.filter_chain_match.transport_protocol: %q unsupported (tls or raw_buffer)", path, tp)
		}
		out.ApplicationProtocols = m.GetApplicationProtocols()
	}
	tlsCtx, err := unmarshalTransportSocket(fc.GetTransportSocket(), path+".transport_socket", false)
	if err != nil {
		return nil, err
	}
	out.TLS = tlsCtx
	fs := fc.GetFilters()
	if len(fs) == 0 {
		return nil, fmt.Errorf("field %s.filters: want a network filter (http_connection_manager or tcp_proxy), got none", path)
	}
	// Network RBAC and ext_authz filters may precede the terminal filter
	// (unmarshal_security.go, unmarshal_extauthz.go), and Istio's istio.stats
	// network filter a tcp_proxy (istiostats.go).
	var tcpStats *IstioStats
	for i, f := range fs[:len(fs)-1] {
		fpath := fmt.Sprintf("%s.filters[%d]", path, i)
		switch f.GetTypedConfig().GetTypeUrl() {
		case typeRBACNetwork:
			e, err := unmarshalNetworkRBAC(f.GetTypedConfig(), fpath+".typed_config")
			if err != nil {
				return nil, err
			}
			out.NetworkRBAC = append(out.NetworkRBAC, NetworkAuthz{RBAC: e})
		case typeExtAuthzNetwork:
			c, err := unmarshalNetworkExtAuthz(f.GetTypedConfig(), fpath+".typed_config")
			if err != nil {
				return nil, err
			}
			out.NetworkRBAC = append(out.NetworkRBAC, NetworkAuthz{ExtAuthz: c})
		case typeIstioStats:
			if tcpStats != nil {
				return nil, fmt.Errorf("field %s: a second istio.stats filter in one chain", fpath)
			}
			st, err := unmarshalIstioStats(f.GetTypedConfig(), fpath+".typed_config")
			if err != nil {
				return nil, err
			}
			tcpStats = st
		default:
			return nil, fmt.Errorf("field %s: only envoy.filters.network.rbac, envoy.filters.network.ext_authz and istio.stats may precede the last network filter (http_connection_manager or tcp_proxy), got %q", fpath, f.GetName())
		}
	}
	f := fs[len(fs)-1]
	fpath := fmt.Sprintf("%s.filters[%d]", path, len(fs)-1)
	tc := f.GetTypedConfig()
	if tc == nil {
		return nil, fmt.Errorf("field %s.typed_config: missing", fpath)
	}
	switch tc.GetTypeUrl() {
	case typeHCM:
		h := &hcmv3.HttpConnectionManager{}
		if err := tc.UnmarshalTo(h); err != nil {
			return nil, fmt.Errorf("field %s.typed_config: %w", fpath, err)
		}
		hcm, err := unmarshalHCM(h, fpath+".typed_config")
		if err != nil {
			return nil, err
		}
		if tcpStats != nil {
			return nil, fmt.Errorf("field %s.filters: the istio.stats network filter records TCP metrics and precedes a tcp_proxy only; an HTTP chain takes the istio.stats HTTP filter", path)
		}
		out.HTTP = hcm
	case typeTCPProxy:
		t := &tcpproxyv3.TcpProxy{}
		if err := tc.UnmarshalTo(t); err != nil {
			return nil, fmt.Errorf("field %s.typed_config: %w", fpath, err)
		}
		tp, err := unmarshalTCPProxy(t, fpath+".typed_config")
		if err != nil {
			return nil, err
		}
		tp.Stats = tcpStats
		out.TCP = tp
	default:
		return nil, fmt.Errorf("field %s.typed_config: network filter type %q unsupported", fpath, tc.GetTypeUrl())
	}
	return out, nil
}

func unmarshalHCM(h *hcmv3.HttpConnectionManager, path string) (*HTTPConnectionManager, error) {
	if err := checkFields(h, path, "stat_prefix", "codec_type", "rds", "route_config", "http_filters",
		"access_log", "use_remote_address", "generate_request_id", "preserve_external_request_id",
		"forward_client_cert_details", "set_current_client_cert_details", "normalize_path",
		"merge_slashes", "path_with_escaped_slashes_action", "stream_idle_timeout", "common_http_protocol_options",
		"http_protocol_options", "http2_protocol_options", "upgrade_configs", "server_name", "server_header_transformation", "tracing",
		"request_id_extension", "internal_address_config", "xff_num_trusted_hops", "delayed_close_timeout",
		"max_request_headers_kb", "strip_port_mode", "strip_any_host_port"); err != nil {
		return nil, err
	}
	out := &HTTPConnectionManager{StatPrefix: h.GetStatPrefix(), StreamIdleTimeout: h.GetStreamIdleTimeout().AsDuration()}
	if kb := h.GetMaxRequestHeadersKb(); kb != nil {
		// Envoy's bounds: 1 to 8192 KiB.
		if kb.GetValue() == 0 || kb.GetValue() > 8192 {
			return nil, fmt.Errorf("field %s.max_request_headers_kb: %d outside 1-8192", path, kb.GetValue())
		}
		out.MaxRequestHeadersBytes = int(kb.GetValue()) << 10
	}
	if o := h.GetCommonHttpProtocolOptions(); o != nil {
		if err := checkFields(o, path+".common_http_protocol_options", "max_headers_count"); err != nil {
			return nil, err
		}
		if n := o.GetMaxHeadersCount(); n != nil {
			if n.GetValue() == 0 {
				return nil, fmt.Errorf("field %s.common_http_protocol_options.max_headers_count: must be at least 1", path)
			}
			out.MaxHeadersCount = int(min(n.GetValue(), 1<<20))
		}
	}
	paths, err := pathOptions(h, path)
	if err != nil {
		return nil, err
	}
	out.Paths = paths
	out.UseRemoteAddress, out.XFFNumTrustedHops = h.GetUseRemoteAddress().GetValue(), h.GetXffNumTrustedHops()
	if out.AccessLogs, err = unmarshalAccessLogs(h.GetAccessLog(), path); err != nil {
		return nil, err
	}
	if t := h.GetTracing(); t != nil {
		if out.Tracing, err = unmarshalTracing(t, path+".tracing"); err != nil {
			return nil, err
		}
	}
	out.ServerName = h.GetServerName()
	if out.ServerName == "" {
		out.ServerName = "envoy"
	}
	switch t := h.GetServerHeaderTransformation(); t {
	case hcmv3.HttpConnectionManager_OVERWRITE:
		out.ServerHeader = ServerOverwrite
	case hcmv3.HttpConnectionManager_APPEND_IF_ABSENT:
		out.ServerHeader = ServerAppendIfAbsent
	case hcmv3.HttpConnectionManager_PASS_THROUGH:
		out.ServerHeader = ServerPassThrough
	default:
		return nil, fmt.Errorf("field %s.server_header_transformation: %v unsupported", path, t)
	}
	switch rs := h.GetRouteSpecifier().(type) {
	case *hcmv3.HttpConnectionManager_Rds:
		if err := checkFields(rs.Rds, path+".rds", "config_source", "route_config_name"); err != nil {
			return nil, err
		}
		if rs.Rds.GetConfigSource().GetAds() == nil {
			return nil, fmt.Errorf("field %s.rds.config_source: only ads is supported", path)
		}
		if rs.Rds.GetRouteConfigName() == "" {
			return nil, fmt.Errorf("field %s.rds.route_config_name: empty", path)
		}
		out.RDSName = rs.Rds.GetRouteConfigName()
	case *hcmv3.HttpConnectionManager_RouteConfig:
		rc, err := unmarshalRouteConfig(rs.RouteConfig, path+".route_config")
		if err != nil {
			return nil, err
		}
		out.Routes = rc
	default:
		return nil, fmt.Errorf("field %s.route_specifier: rds or route_config required", path)
	}
	sawRouter := false
	for i, hf := range h.GetHttpFilters() {
		p := fmt.Sprintf("%s.http_filters[%d]", path, i)
		if sawRouter {
			return nil, fmt.Errorf("field %s: filter after the router", p)
		}
		if err := checkFields(hf, p, "name", "typed_config", "is_optional"); err != nil {
			return nil, err
		}
		tc := hf.GetTypedConfig()
		if tc == nil && strings.HasSuffix(hf.GetName(), ".router") {
			tc, _ = anypb.New(&routerv3.Router{})
		}
		if tc == nil {
			return nil, fmt.Errorf("field %s.typed_config: missing", p)
		}
		cfg, ok, err := unmarshalHTTPFilterConfig(tc, p+".typed_config")
		if err != nil {
			return nil, err
		}
		if !ok {
			if hf.GetIsOptional() {
				continue
			}
			return nil, fmt.Errorf("field %s: http filter %q (%s) unsupported", p, hf.GetName(), tc.GetTypeUrl())
		}
		_, sawRouter = cfg.(*Router)
		if st, ok := cfg.(*IstioStats); ok {
			out.Stats = st
		}
		out.Filters = append(out.Filters, HTTPFilter{Name: hf.GetName(), TypeURL: tc.GetTypeUrl(), Config: cfg})
	}
	if !sawRouter {
		return nil, fmt.Errorf("field %s.http_filters: the router filter is required", path)
	}
	return out, nil
}

func unmarshalFaultAny(a *anypb.Any, path string) (*Fault, error) {
	f := &faultv3.HTTPFault{}
	if err := a.UnmarshalTo(f); err != nil {
		return nil, fmt.Errorf("field %s: %w", path, err)
	}
	return unmarshalFault(f, path)
}

func unmarshalTCPProxy(t *tcpproxyv3.TcpProxy, path string) (*TCPProxy, error) {
	if err := checkFields(t, path, "stat_prefix", "cluster", "weighted_clusters", "idle_timeout", "access_log",
		"max_connect_attempts"); err != nil {
		return nil, err
	}
	out := &TCPProxy{StatPrefix: t.GetStatPrefix(), IdleTimeout: t.GetIdleTimeout().AsDuration()}
	switch cs := t.GetClusterSpecifier().(type) {
	case *tcpproxyv3.TcpProxy_Cluster:
		if cs.Cluster == "" {
			return nil, fmt.Errorf("field %s.cluster: empty", path)
		}
		out.Clusters = []WeightedCluster{{Name: cs.Cluster, Weight: 1}}
	case *tcpproxyv3.TcpProxy_WeightedClusters:
		for i, c := range cs.WeightedClusters.GetClusters() {
			p := fmt.Sprintf("%s.weighted_clusters.clusters[%d]", path, i)
			if err := checkFields(c, p, "name", "weight"); err != nil {
				return nil, err
			}
			if c.GetName() == "" {
				return nil, fmt.Errorf("field %s.name: empty", p)
			}
			out.Clusters = append(out.Clusters, WeightedCluster{Name: c.GetName(), Weight: c.GetWeight()})
		}
		if totalWeight(out.Clusters) == 0 {
			return nil, fmt.Errorf("field %s.weighted_clusters: total weight is 0", path)
		}
	default:
		return nil, fmt.Errorf("field %s.cluster_specifier: cluster or weighted_clusters required", path)
	}
	return out, nil
}

// maxPredicateDepth bounds the nesting of a filter_disabled predicate.
const maxPredicateDepth = 8

// unmarshalPortPredicate checks a listener filter's filter_disabled:
// destination port ranges combined with or, and, not, and any.
func unmarshalPortPredicate(p *listenerv3.ListenerFilterChainMatchPredicate, path string, depth int) (*PortPredicate, error) {
	if depth > maxPredicateDepth {
		return nil, fmt.Errorf("field %s: nested deeper than %d", path, maxPredicateDepth)
	}
	set := func(ms *listenerv3.ListenerFilterChainMatchPredicate_MatchSet, name string) ([]PortPredicate, error) {
		if len(ms.GetRules()) < 2 {
			return nil, fmt.Errorf("field %s.%s.rules: want at least 2, got %d", path, name, len(ms.GetRules()))
		}
		out := make([]PortPredicate, 0, len(ms.GetRules()))
		for i, r := range ms.GetRules() {
			c, err := unmarshalPortPredicate(r, fmt.Sprintf("%s.%s.rules[%d]", path, name, i), depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, *c)
		}
		return out, nil
	}
	var err error
	out := &PortPredicate{}
	switch r := p.GetRule().(type) {
	case *listenerv3.ListenerFilterChainMatchPredicate_AnyMatch:
		if !r.AnyMatch {
			return nil, fmt.Errorf("field %s.any_match: must be true", path)
		}
		out.Any = true
	case *listenerv3.ListenerFilterChainMatchPredicate_DestinationPortRange:
		start, end := r.DestinationPortRange.GetStart(), r.DestinationPortRange.GetEnd()
		if start < 0 || end <= start || end > 65536 {
			return nil, fmt.Errorf("field %s.destination_port_range: [%d, %d) is not a port range", path, start, end)
		}
		out.Start, out.End = uint32(start), uint32(end)
	case *listenerv3.ListenerFilterChainMatchPredicate_NotMatch:
		if out.Not, err = unmarshalPortPredicate(r.NotMatch, path+".not_match", depth+1); err != nil {
			return nil, err
		}
	case *listenerv3.ListenerFilterChainMatchPredicate_OrMatch:
		if out.Or, err = set(r.OrMatch, "or_match"); err != nil {
			return nil, err
		}
	case *listenerv3.ListenerFilterChainMatchPredicate_AndMatch:
		if out.And, err = set(r.AndMatch, "and_match"); err != nil {
			return nil, err
		}
	case nil:
		return nil, fmt.Errorf("field %s: no rule", path)
	default:
		return nil, fmt.Errorf("field %s: rule unsupported (destination_port_range, or_match, and_match, not_match, any_match)", path)
	}
	return out, nil
}

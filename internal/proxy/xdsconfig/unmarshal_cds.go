package xdsconfig

import (
	"fmt"
	"math"
	"math/big"
	"net/netip"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	dfpclusterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/clusters/dynamic_forward_proxy/v3"
	dfpcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/dynamic_forward_proxy/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const typeHTTPProtocolOptions = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// UnmarshalCluster checks a Cluster and converts it.
func UnmarshalCluster(c *clusterv3.Cluster) (*Cluster, error) {
	out, err := unmarshalCluster(c)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", c.GetName(), err)
	}
	return out, nil
}

func unmarshalCluster(c *clusterv3.Cluster) (*Cluster, error) {
	if err := checkFields(c, "", "name", "type", "eds_cluster_config", "lb_policy", "connect_timeout",
		"circuit_breakers", "outlier_detection", "load_assignment", "typed_extension_protocol_options",
		"http2_protocol_options", "dns_lookup_family", "dns_refresh_rate", "respect_dns_ttl", "common_lb_config",
		"alt_stat_name", "metadata", "per_connection_buffer_limit_bytes", "cleanup_interval",
		"upstream_connection_options", "lb_config", "ring_hash_lb_config", "maglev_lb_config",
		"least_request_lb_config", "round_robin_lb_config", "track_cluster_stats", "transport_socket",
		"transport_socket_matches", "upstream_bind_config", "cluster_type"); err != nil {
		return nil, err
	}
	if c.GetName() == "" {
		return nil, fmt.Errorf("field name: empty")
	}
	out := &Cluster{Name: c.GetName(), ConnectTimeout: 5 * time.Second,
		Limits: Limits{MaxConnections: 1024, MaxPending: 1024, MaxRequests: 1024, MaxRetries: 3},
		Conn:   ConnLimits{IdleTimeout: time.Hour}}
	if ct := c.GetConnectTimeout(); ct != nil {
		out.ConnectTimeout = ct.AsDuration()
	}
	switch ct := c.GetClusterType(); {
	case ct != nil:
		if err := unmarshalClusterType(ct); err != nil {
			return nil, err
		}
		out.Type = DiscoveryDynamicForwardProxy
	case c.GetType() == clusterv3.Cluster_STATIC:
		out.Type = DiscoveryStatic
	case c.GetType() == clusterv3.Cluster_STRICT_DNS:
		out.Type = DiscoveryStrictDNS
	case c.GetType() == clusterv3.Cluster_LOGICAL_DNS:
		out.Type = DiscoveryLogicalDNS
	case c.GetType() == clusterv3.Cluster_EDS:
		out.Type = DiscoveryEDS
		if c.GetEdsClusterConfig().GetEdsConfig().GetAds() == nil {
			return nil, fmt.Errorf("field eds_cluster_config.eds_config: only ads is supported")
		}
		out.EDSName = c.GetEdsClusterConfig().GetServiceName()
		if out.EDSName == "" {
			out.EDSName = c.GetName()
		}
	case c.GetType() == clusterv3.Cluster_ORIGINAL_DST:
		out.Type = DiscoveryOriginalDst
	default:
		return nil, fmt.Errorf("field type: %v unsupported", c.GetType())
	}
	switch c.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN:
		out.LB = LBRoundRobin
	case clusterv3.Cluster_LEAST_REQUEST:
		out.LB = LBLeastRequest
	case clusterv3.Cluster_RANDOM:
		out.LB = LBRandom
	case clusterv3.Cluster_RING_HASH:
		out.LB = LBRingHash
		rh := c.GetRingHashLbConfig()
		// hash_function only places the ring's points, which no one outside
		// this proxy sees: any is served with the proxy's own hash.
		if err := checkFields(rh, "ring_hash_lb_config", "minimum_ring_size", "maximum_ring_size", "hash_function"); err != nil {
			return nil, err
		}
		out.RingMin, out.RingMax = 1024, 8<<20
		if v := rh.GetMinimumRingSize(); v != nil {
			out.RingMin = v.GetValue()
		}
		if v := rh.GetMaximumRingSize(); v != nil {
			out.RingMax = v.GetValue()
		}
		if out.RingMin == 0 || out.RingMin > out.RingMax || out.RingMax > 8<<20 {
			return nil, fmt.Errorf("field ring_hash_lb_config: minimum_ring_size %d and maximum_ring_size %d must satisfy 0 < min <= max <= 8388608",
				out.RingMin, out.RingMax)
		}
	case clusterv3.Cluster_MAGLEV:
		out.LB = LBMaglev
		if err := checkFields(c.GetMaglevLbConfig(), "maglev_lb_config", "table_size"); err != nil {
			return nil, err
		}
		out.MaglevTableSize = 65537
		if v := c.GetMaglevLbConfig().GetTableSize(); v != nil {
			out.MaglevTableSize = v.GetValue()
		}
		if !big.NewInt(int64(out.MaglevTableSize)).ProbablyPrime(0) || out.MaglevTableSize > 5000011 {
			return nil, fmt.Errorf("field maglev_lb_config.table_size: %d must be a prime number up to 5000011", out.MaglevTableSize)
		}
	case clusterv3.Cluster_CLUSTER_PROVIDED:
		if out.Type != DiscoveryOriginalDst && out.Type != DiscoveryDynamicForwardProxy {
			return nil, fmt.Errorf("field lb_policy: CLUSTER_PROVIDED needs type ORIGINAL_DST or the dynamic forward proxy cluster_type")
		}
	default:
		return nil, fmt.Errorf("field lb_policy: %v unsupported", c.GetLbPolicy())
	}
	for i, t := range c.GetCircuitBreakers().GetThresholds() {
		if t.GetPriority() != corev3.RoutingPriority_DEFAULT {
			continue
		}
		p := fmt.Sprintf("circuit_breakers.thresholds[%d]", i)
		if err := checkFields(t, p, "priority", "max_connections", "max_pending_requests", "max_requests",
			"max_retries", "track_remaining", "retry_budget"); err != nil {
			return nil, err
		}
		setLimit(&out.Limits.MaxConnections, t.GetMaxConnections())
		setLimit(&out.Limits.MaxPending, t.GetMaxPendingRequests())
		setLimit(&out.Limits.MaxRequests, t.GetMaxRequests())
		setLimit(&out.Limits.MaxRetries, t.GetMaxRetries())
		if rb := t.GetRetryBudget(); rb != nil {
			b, err := unmarshalRetryBudget(rb, p+".retry_budget")
			if err != nil {
				return nil, err
			}
			out.Limits.RetryBudget = b
		}
	}
	if od := c.GetOutlierDetection(); od != nil {
		if err := checkFields(od, "outlier_detection", "consecutive_5xx", "consecutive_gateway_failure",
			"interval", "base_ejection_time", "max_ejection_time", "max_ejection_percent", "enforcing_consecutive_5xx",
			"enforcing_consecutive_gateway_failure", "enforcing_success_rate", "success_rate_minimum_hosts",
			"success_rate_request_volume", "success_rate_stdev_factor", "split_external_local_origin_errors",
			"enforcing_consecutive_local_origin_failure", "enforcing_local_origin_success_rate"); err != nil {
			return nil, err
		}
		// Local-origin failures are only counted apart with
		// split_external_local_origin_errors; the proxy counts them as 5xx
		// (Envoy's default), so local-origin enforcement has nothing to act on.
		if od.GetSplitExternalLocalOriginErrors() {
			return nil, fmt.Errorf("field outlier_detection.split_external_local_origin_errors: unsupported")
		}
		o := &OutlierDetection{Consecutive5xx: 5, Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second,
			MaxEjectionTime: 300 * time.Second, MaxEjectionPercent: 10}
		setLimit(&o.Consecutive5xx, od.GetConsecutive_5Xx())
		setLimit(&o.ConsecutiveGatewayFailure, od.GetConsecutiveGatewayFailure())
		setLimit(&o.MaxEjectionPercent, od.GetMaxEjectionPercent())
		if e := od.GetEnforcingConsecutive_5Xx(); e != nil && e.GetValue() == 0 {
			o.Consecutive5xx = 0
		}
		switch e := od.GetEnforcingConsecutiveGatewayFailure(); {
		case e == nil || e.GetValue() == 0:
			// Envoy enforces gateway failures only when asked
			// (enforcing_consecutive_gateway_failure defaults to 0).
			o.ConsecutiveGatewayFailure = 0
		case od.GetConsecutiveGatewayFailure() == nil:
			o.ConsecutiveGatewayFailure = 5
		}
		if e := od.GetEnforcingSuccessRate(); e == nil || e.GetValue() > 0 {
			sr := &SuccessRateEjection{Enforcing: 100, MinimumHosts: 5, RequestVolume: 100, StdevFactor: 1900}
			if e != nil {
				sr.Enforcing = min(e.GetValue(), 100)
			}
			setLimit(&sr.MinimumHosts, od.GetSuccessRateMinimumHosts())
			setLimit(&sr.RequestVolume, od.GetSuccessRateRequestVolume())
			setLimit(&sr.StdevFactor, od.GetSuccessRateStdevFactor())
			o.SuccessRate = sr
		}
		if d := od.GetInterval(); d != nil {
			o.Interval = d.AsDuration()
		}
		if d := od.GetBaseEjectionTime(); d != nil {
			o.BaseEjectionTime = d.AsDuration()
		}
		if d := od.GetMaxEjectionTime(); d != nil {
			o.MaxEjectionTime = d.AsDuration()
		}
		if o.Interval <= 0 {
			return nil, fmt.Errorf("field outlier_detection.interval: must be positive")
		}
		out.Outlier = o
	}
	out.PanicThreshold = 50
	if lb := c.GetCommonLbConfig(); lb != nil {
		// Locality weights are accepted as before: the proxy balances over
		// all localities by endpoint weight.
		if err := checkFields(lb, "common_lb_config", "healthy_panic_threshold", "locality_weighted_lb_config"); err != nil {
			return nil, err
		}
		if t := lb.GetHealthyPanicThreshold(); t != nil {
			if v := t.GetValue(); v < 0 || v > 100 || math.IsNaN(v) {
				return nil, fmt.Errorf("field common_lb_config.healthy_panic_threshold: %v is not a percentage", v)
			}
			out.PanicThreshold = t.GetValue()
		}
	}
	tlsCtx, err := unmarshalTransportSocket(c.GetTransportSocket(), "transport_socket", true)
	if err != nil {
		return nil, err
	}
	out.TLS = tlsCtx
	for i, m := range c.GetTransportSocketMatches() {
		p := fmt.Sprintf("transport_socket_matches[%d]", i)
		if err := checkFields(m, p, "name", "match", "transport_socket"); err != nil {
			return nil, err
		}
		tm := TransportSocketMatch{Name: m.GetName(), Match: map[string]string{}}
		for k, v := range m.GetMatch().GetFields() {
			sv, ok := v.GetKind().(*structpb.Value_StringValue)
			if !ok {
				return nil, fmt.Errorf("field %s.match.%s: only string values are supported", p, k)
			}
			tm.Match[k] = sv.StringValue
		}
		if tm.TLS, err = unmarshalTransportSocket(m.GetTransportSocket(), p+".transport_socket", true); err != nil {
			return nil, err
		}
		out.TLSMatches = append(out.TLSMatches, tm)
	}
	if b := c.GetUpstreamBindConfig(); b != nil {
		a, err := unmarshalBindConfig(b)
		if err != nil {
			return nil, err
		}
		out.SourceAddress = a
	}
	if c.GetHttp2ProtocolOptions() != nil {
		out.Protocol = ProtocolHTTP2
	}
	for k, v := range c.GetTypedExtensionProtocolOptions() {
		p := fmt.Sprintf("typed_extension_protocol_options[%s]", k)
		if k != typeHTTPProtocolOptions {
			return nil, fmt.Errorf("field %s: unsupported", p)
		}
		o := &httpv3.HttpProtocolOptions{}
		if err := v.UnmarshalTo(o); err != nil {
			return nil, fmt.Errorf("field %s: %w", p, err)
		}
		if err := checkFields(o, p, "common_http_protocol_options", "explicit_http_config",
			"use_downstream_protocol_config", "upstream_http_protocol_options"); err != nil {
			return nil, err
		}
		if co := o.GetCommonHttpProtocolOptions(); co != nil {
			cp := p + ".common_http_protocol_options"
			if err := checkFields(co, cp, "idle_timeout", "max_requests_per_connection", "max_connection_duration"); err != nil {
				return nil, err
			}
			if d := co.GetIdleTimeout(); d != nil {
				out.Conn.IdleTimeout = d.AsDuration() // 0 disables it, as in Envoy
			}
			out.Conn.MaxRequests = co.GetMaxRequestsPerConnection().GetValue()
			out.Conn.MaxDuration = co.GetMaxConnectionDuration().AsDuration()
			if out.Conn.IdleTimeout < 0 || out.Conn.MaxDuration < 0 {
				return nil, fmt.Errorf("field %s: idle_timeout and max_connection_duration must not be negative", cp)
			}
		}
		switch u := o.GetUpstreamProtocolOptions().(type) {
		case *httpv3.HttpProtocolOptions_ExplicitHttpConfig_:
			if u.ExplicitHttpConfig.GetHttp2ProtocolOptions() != nil {
				out.Protocol = ProtocolHTTP2
			} else if u.ExplicitHttpConfig.GetHttp3ProtocolOptions() != nil {
				return nil, fmt.Errorf("field %s.explicit_http_config.http3_protocol_options: unsupported", p)
			}
		case *httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig:
			out.Protocol = ProtocolDownstream
		}
	}
	if out.Services, err = servicesFromMetadata(c.GetMetadata()); err != nil {
		return nil, err
	}
	if la := c.GetLoadAssignment(); la != nil {
		if la.GetClusterName() == "" {
			la.ClusterName = c.GetName()
		}
		cla, err := unmarshalCLA(la, "load_assignment")
		if err != nil {
			return nil, err
		}
		out.Endpoints = cla
	}
	switch out.Type {
	case DiscoveryStatic, DiscoveryStrictDNS, DiscoveryLogicalDNS:
		if out.Endpoints == nil {
			return nil, fmt.Errorf("field load_assignment: required for type %v", c.GetType())
		}
	}
	return out, nil
}

// unmarshalBindConfig checks upstream_bind_config: a source IP, port 0 (the
// kernel picks the port), nothing else.
func unmarshalBindConfig(b *corev3.BindConfig) (netip.Addr, error) {
	const p = "upstream_bind_config"
	if err := checkFields(b, p, "source_address"); err != nil {
		return netip.Addr{}, err
	}
	sa := b.GetSourceAddress()
	if err := checkFields(sa, p+".source_address", "address", "port_value", "protocol"); err != nil {
		return netip.Addr{}, err
	}
	if sa.GetProtocol() != corev3.SocketAddress_TCP {
		return netip.Addr{}, fmt.Errorf("field %s.source_address.protocol: only TCP is supported", p)
	}
	a, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("field %s.source_address.address: %q is not an IP address", p, sa.GetAddress())
	}
	if sa.GetPortValue() != 0 {
		return netip.Addr{}, fmt.Errorf("field %s.source_address.port_value: must be 0 (a fixed source port would allow one connection at a time)", p)
	}
	return a, nil
}

// unmarshalRetryBudget checks a circuit breaker's retry_budget, with
// Envoy's defaults for what it leaves out.
func unmarshalRetryBudget(rb *clusterv3.CircuitBreakers_Thresholds_RetryBudget, path string) (*RetryBudget, error) {
	if err := checkFields(rb, path, "budget_percent", "budget_interval", "min_retry_concurrency"); err != nil {
		return nil, err
	}
	out := &RetryBudget{Percent: 20, MinConcurrency: 3}
	if p := rb.GetBudgetPercent(); p != nil {
		if v := p.GetValue(); v < 0 || v > 100 || math.IsNaN(v) {
			return nil, fmt.Errorf("field %s.budget_percent: %v must be between 0 and 100", path, v)
		}
		out.Percent = p.GetValue()
	}
	setLimit(&out.MinConcurrency, rb.GetMinRetryConcurrency())
	if d := rb.GetBudgetInterval(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
			return nil, fmt.Errorf("field %s.budget_interval: must be a non-negative duration", path)
		}
		out.Interval = d.AsDuration()
	}
	return out, nil
}

func setLimit(dst *uint32, v *wrapperspb.UInt32Value) {
	if v != nil {
		*dst = v.GetValue()
	}
}

// servicesFromMetadata reads Istio's cluster telemetry metadata,
// filter_metadata.istio.services: [{host, name, namespace}].
func servicesFromMetadata(md *corev3.Metadata) ([]ServiceMeta, error) {
	v, ok := md.GetFilterMetadata()["istio"].GetFields()["services"]
	if !ok {
		return nil, nil
	}
	list, ok := v.GetKind().(*structpb.Value_ListValue)
	if !ok {
		return nil, fmt.Errorf("field metadata.filter_metadata.istio.services: a list is required")
	}
	var out []ServiceMeta
	for i, e := range list.ListValue.GetValues() {
		f := e.GetStructValue().GetFields()
		s := ServiceMeta{Host: f["host"].GetStringValue(), Name: f["name"].GetStringValue(), Namespace: f["namespace"].GetStringValue()}
		if s.Host == "" {
			return nil, fmt.Errorf("field metadata.filter_metadata.istio.services[%d].host: empty", i)
		}
		out = append(out, s)
	}
	return out, nil
}

// clusterTypeDFP is the one custom cluster_type the proxy implements.
const clusterTypeDFP = "envoy.clusters.dynamic_forward_proxy"

// unmarshalClusterType checks a cluster_type: only Envoy's dynamic forward
// proxy with a DNS cache config (the proxy resolves each authority itself).
func unmarshalClusterType(ct *clusterv3.Cluster_CustomClusterType) error {
	if ct.GetName() != clusterTypeDFP {
		return fmt.Errorf("field cluster_type.name: %q unsupported (only %s)", ct.GetName(), clusterTypeDFP)
	}
	cc := &dfpclusterv3.ClusterConfig{}
	if err := ct.GetTypedConfig().UnmarshalTo(cc); err != nil {
		return fmt.Errorf("field cluster_type.typed_config: %w", err)
	}
	if err := checkFields(cc, "cluster_type.typed_config", "dns_cache_config", "allow_insecure_cluster_options"); err != nil {
		return err
	}
	return checkDNSCache(cc.GetDnsCacheConfig(), "cluster_type.typed_config.dns_cache_config")
}

// checkDNSCache checks a dynamic forward proxy DNS cache config.
func checkDNSCache(c *dfpcommonv3.DnsCacheConfig, path string) error {
	if c == nil {
		return fmt.Errorf("field %s: missing", path)
	}
	if err := checkFields(c, path, "name", "dns_lookup_family", "dns_refresh_rate", "host_ttl", "max_hosts"); err != nil {
		return err
	}
	if c.GetName() == "" {
		return fmt.Errorf("field %s.name: empty", path)
	}
	return nil
}

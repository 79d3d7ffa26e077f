package xdsconfig

import (
	"net/netip"
	"time"
)

// DiscoveryType is a cluster's discovery type.
type DiscoveryType int

// Discovery types.
const (
	DiscoveryStatic DiscoveryType = iota
	DiscoveryStrictDNS
	DiscoveryLogicalDNS
	DiscoveryEDS
	DiscoveryOriginalDst
	// DiscoveryDynamicForwardProxy is cluster_type
	// envoy.clusters.dynamic_forward_proxy: each request goes to the host and
	// port of its authority (port 80 when absent).
	DiscoveryDynamicForwardProxy
)

// LBPolicy is a cluster's load-balancing policy.
type LBPolicy int

// Load-balancing policies.
const (
	LBRoundRobin LBPolicy = iota
	LBLeastRequest
	LBRandom
	LBRingHash
	LBMaglev
)

// UpstreamProtocol is the HTTP protocol spoken to a cluster's endpoints.
type UpstreamProtocol int

// Upstream protocols.
const (
	// ProtocolHTTP1 is HTTP/1.1, Envoy's default.
	ProtocolHTTP1 UpstreamProtocol = iota
	// ProtocolHTTP2 is HTTP/2 in cleartext (h2c).
	ProtocolHTTP2
	// ProtocolDownstream speaks what the downstream spoke.
	ProtocolDownstream
)

// Cluster is a checked envoy.config.cluster.v3.Cluster.
type Cluster struct {
	// Name is the xDS resource name.
	Name string
	// Type is the discovery type.
	Type DiscoveryType
	// EDSName is the ClusterLoadAssignment to fetch for EDS clusters.
	EDSName string
	// LB is the load-balancing policy.
	LB LBPolicy
	// RingMin and RingMax bound the ring hash's ring size
	// (ring_hash_lb_config; Envoy's defaults 1024 and 8M).
	RingMin, RingMax uint64
	// MaglevTableSize is the Maglev lookup table's size, a prime
	// (maglev_lb_config.table_size; default 65537).
	MaglevTableSize uint64
	// ConnectTimeout bounds TCP connects (Envoy default 5s).
	ConnectTimeout time.Duration
	// Limits are the default-priority circuit-breaker thresholds.
	Limits Limits
	// Outlier is the outlier detection config, or nil.
	Outlier *OutlierDetection
	// PanicThreshold is common_lb_config.healthy_panic_threshold, a
	// percentage (Envoy's default 50): while fewer of the cluster's hosts
	// are healthy (not EDS-unhealthy, not ejected), the load balancer uses
	// all of them. 0 disables panic mode, as istiod sets it.
	PanicThreshold float64
	// Protocol is the upstream HTTP protocol.
	Protocol UpstreamProtocol
	// Conn is common_http_protocol_options: how long upstream connections
	// live and how many requests they carry.
	Conn ConnLimits
	// Endpoints are the load_assignment of STATIC and DNS clusters.
	Endpoints *ClusterLoadAssignment
	// TLS is transport_socket: the upstream TLS of every host (nil: plaintext
	// unless TLSMatches say otherwise).
	TLS *TLSContext
	// TLSMatches are transport_socket_matches, first match wins per host;
	// hosts matching none use TLS.
	TLSMatches []TransportSocketMatch
	// SourceAddress is upstream_bind_config.source_address: the local
	// address upstream connections are made from (any port), or the zero
	// Addr for the kernel's choice. Istio's InboundPassthroughCluster binds
	// 127.0.0.6, which the pod's iptables never capture.
	SourceAddress netip.Addr
	// Services are Istio's telemetry metadata of the cluster
	// (filter_metadata.istio.services): the services behind it, from which
	// metrics take destination_service*. Empty when absent.
	Services []ServiceMeta
}

// ServiceMeta is one service of a cluster's telemetry metadata.
type ServiceMeta struct {
	// Host is the service's FQDN; Name and Namespace its short name and namespace.
	Host, Name, Namespace string
}

// TLSFor returns the upstream TLS for a host with the given
// envoy.transport_socket_match metadata (nil: plaintext).
func (c *Cluster) TLSFor(md map[string]string) *TLSContext {
	for i := range c.TLSMatches {
		m := &c.TLSMatches[i]
		ok := true
		for k, v := range m.Match {
			if md[k] != v {
				ok = false
				break
			}
		}
		if ok {
			return m.TLS
		}
	}
	return c.TLS
}

// TLSContexts lists every TLS context of the cluster.
func (c *Cluster) TLSContexts() []*TLSContext {
	var out []*TLSContext
	if c.TLS != nil {
		out = append(out, c.TLS)
	}
	for _, m := range c.TLSMatches {
		if m.TLS != nil {
			out = append(out, m.TLS)
		}
	}
	return out
}

// Limits are circuit-breaker thresholds (Envoy defaults 1024 each, retries 3).
type Limits struct {
	// MaxConnections bounds connections to the cluster.
	MaxConnections uint32
	// MaxPending bounds requests waiting for a connection.
	MaxPending uint32
	// MaxRequests bounds outstanding requests.
	MaxRequests uint32
	// MaxRetries bounds outstanding retries.
	MaxRetries uint32
	// RetryBudget, when set, bounds outstanding retries instead of MaxRetries.
	RetryBudget *RetryBudget
}

// RetryBudget is a circuit breaker's retry_budget: outstanding retries are
// at most Percent of the cluster's active requests (with Interval: of the
// requests started in the last Interval, finished or not), and never fewer
// than MinConcurrency.
type RetryBudget struct {
	// Percent is budget_percent (Envoy's default 20).
	Percent float64
	// MinConcurrency is min_retry_concurrency (default 3).
	MinConcurrency uint32
	// Interval is budget_interval; 0 counts only active requests.
	Interval time.Duration
}

// ConnLimits are an upstream connection's idle timeout (default 1h),
// request count (0: unlimited) and age (0: unlimited).
type ConnLimits struct {
	IdleTimeout time.Duration
	MaxRequests uint32
	MaxDuration time.Duration
}

// OutlierDetection is the supported subset of outlier detection.
type OutlierDetection struct {
	// Consecutive5xx ejects a host after this many consecutive 5xx (default 5).
	Consecutive5xx uint32
	// ConsecutiveGatewayFailure ejects a host after this many consecutive
	// 502/503/504 or connect failures; 0 disables.
	ConsecutiveGatewayFailure uint32
	// Interval is the ejection-sweep interval (default 10s).
	Interval time.Duration
	// BaseEjectionTime is multiplied by the host's ejection multiplier
	// (default 30s).
	BaseEjectionTime time.Duration
	// MaxEjectionTime caps an ejection (default 300s).
	MaxEjectionTime time.Duration
	// MaxEjectionPercent caps ejected hosts (default 10).
	MaxEjectionPercent uint32
	// SuccessRate is success-rate ejection, nil when
	// enforcing_success_rate is 0 (as istiod sets it).
	SuccessRate *SuccessRateEjection
}

// SuccessRateEjection is Envoy's success-rate outlier detection: each
// interval, among the hosts with at least RequestVolume requests in it, and
// only when there are at least MinimumHosts of them, a host whose success
// rate (responses other than 5xx, connect failures counted as failures) is
// below mean - StdevFactor/1000 * stdev is ejected, with probability
// Enforcing percent.
type SuccessRateEjection struct {
	// Enforcing is enforcing_success_rate (default 100).
	Enforcing uint32
	// MinimumHosts is success_rate_minimum_hosts (default 5).
	MinimumHosts uint32
	// RequestVolume is success_rate_request_volume (default 100).
	RequestVolume uint32
	// StdevFactor is success_rate_stdev_factor (default 1900: 1.9).
	StdevFactor uint32
}

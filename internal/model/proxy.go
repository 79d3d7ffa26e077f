package model

// ProxyType is what kind of xDS client a proxy is.
type ProxyType string

// Proxy types, as Istio names them in the node id.
const (
	SidecarProxy ProxyType = "sidecar"
	Router       ProxyType = "router"
)

// PortMapping maps a port the proxy listens on to a port on loopback.
type PortMapping struct {
	Port       uint32 // where the proxy listens
	TargetPort uint32 // where traffic goes (127.0.0.1:TargetPort), or the listen port override
}

// Proxy is a connected xDS client as the generators see it: parsed and checked
// from the node id and metadata by the ADS server (see docs/xds.md). Proxy
// values are immutable.
type Proxy struct {
	ID             string
	Type           ProxyType
	Namespace      string
	WorkloadName   string
	Labels         map[string]string
	ServiceAccount string
	IPs            []string
	// Generator is "grpc" for proxyless gRPC clients, empty for proxies.
	Generator string
	// Inbound is BOWLINE_INBOUND: mesh ports the sidecar listens on and the app ports behind them.
	Inbound []PortMapping
	// OutboundHTTP is BOWLINE_OUTBOUND_HTTP, the explicit HTTP proxy address ("" if none).
	OutboundHTTP string
	// GatewayPorts is BOWLINE_GATEWAY_PORTS: Gateway server port -> port to listen on instead.
	GatewayPorts []PortMapping
	// GatewayAddress is BOWLINE_GATEWAY_ADDRESS: the IP a router binds its
	// Gateway listeners to ("" binds every address, 0.0.0.0, as Istio's gateways do).
	GatewayAddress string
	// InterceptionMode is Istio's INTERCEPTION_MODE: InterceptionRedirect when
	// iptables sends the workload's traffic to the sidecar (a pod, `bowline up
	// --netns`); empty or InterceptionNone for explicit mode.
	InterceptionMode InterceptionMode
	// StatsAddress is BOWLINE_STATS_ADDRESS: IP:PORT where the proxy serves
	// Istio's metrics at /stats/prometheus ("" if it did not say).
	StatsAddress string
}

// InterceptionMode is how a workload's traffic reaches its sidecar.
type InterceptionMode string

// Interception modes, as Istio spells them in node metadata.
const (
	// InterceptionNone: no capture; the app uses the sidecar explicitly.
	InterceptionNone InterceptionMode = "NONE"
	// InterceptionRedirect: iptables REDIRECT to 15001 (outbound) and 15006 (inbound).
	InterceptionRedirect InterceptionMode = "REDIRECT"
)

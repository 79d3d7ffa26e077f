package xdsclient

import (
	"fmt"
	"github.com/bowline-mesh/bowline/internal/telemetry"
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// NodeInfo is what the proxy says about itself to the control plane.
type NodeInfo struct {
	// ID overrides the generated Node.id when not empty.
	ID string
	// Type is "sidecar" or "router".
	Type string
	// Namespace is the workload namespace.
	Namespace string
	// Workload is the workload name.
	Workload string
	// ServiceAccount is the workload's service account.
	ServiceAccount string
	// Labels are the workload's labels.
	Labels map[string]string
	// IPs are the workload's instance IPs; the first is used in Node.id.
	IPs []string
	// Inbound maps mesh ports to application ports.
	Inbound map[uint32]uint32
	// OutboundHTTP is HOST:PORT of the explicit outbound HTTP proxy, or empty.
	OutboundHTTP string
	// GatewayPorts maps Gateway server ports to listen ports (routers).
	GatewayPorts map[uint32]uint32
	// GatewayAddress is the IP a router binds its Gateway listeners to
	// (sent as BOWLINE_GATEWAY_ADDRESS; empty: every address).
	GatewayAddress string
	// InterceptionMode is sent as Istio's INTERCEPTION_MODE ("REDIRECT" when
	// iptables captures the workload's traffic, "NONE"); omitted when empty.
	InterceptionMode string
	// StatsAddress is HOST:PORT where the proxy serves Istio's metrics at
	// /stats/prometheus (sent as BOWLINE_STATS_ADDRESS, for the control
	// plane's dashboard to scrape); omitted when empty.
	StatsAddress string
}

// Node builds the Envoy Node as docs/xds.md specifies: Istio's id form
// <type>~<ip>~<workload>.<namespace>~<namespace>.svc.cluster.local and the
// metadata keys NAMESPACE, WORKLOAD_NAME, LABELS, SERVICE_ACCOUNT,
// INSTANCE_IPS, BOWLINE_PROXY_TYPE, BOWLINE_INBOUND, BOWLINE_OUTBOUND_HTTP,
// BOWLINE_GATEWAY_PORTS, BOWLINE_GATEWAY_ADDRESS, BOWLINE_STATS_ADDRESS.
func (n NodeInfo) Node() *corev3.Node {
	typ := n.Type
	if typ == "" {
		typ = "sidecar"
	}
	ip := ""
	if len(n.IPs) > 0 {
		ip = n.IPs[0]
	}
	id := n.ID
	if id == "" {
		id = fmt.Sprintf("%s~%s~%s.%s~%s.svc.cluster.local", typ, ip, n.Workload, n.Namespace, n.Namespace)
	}
	labels := map[string]any{}
	for k, v := range n.Labels {
		labels[k] = v
	}
	fields := map[string]*structpb.Value{
		"NAMESPACE":          structpb.NewStringValue(n.Namespace),
		"WORKLOAD_NAME":      structpb.NewStringValue(n.Workload),
		"SERVICE_ACCOUNT":    structpb.NewStringValue(n.ServiceAccount),
		"INSTANCE_IPS":       structpb.NewStringValue(strings.Join(n.IPs, ",")),
		"BOWLINE_PROXY_TYPE": structpb.NewStringValue(typ),
	}
	if ls, err := structpb.NewStruct(labels); err == nil {
		fields["LABELS"] = structpb.NewStructValue(ls)
	}
	if len(n.Inbound) > 0 {
		fields["BOWLINE_INBOUND"] = structpb.NewStringValue(portMap(n.Inbound))
	}
	if n.OutboundHTTP != "" {
		fields["BOWLINE_OUTBOUND_HTTP"] = structpb.NewStringValue(n.OutboundHTTP)
	}
	if n.InterceptionMode != "" {
		fields["INTERCEPTION_MODE"] = structpb.NewStringValue(n.InterceptionMode)
	}
	if n.GatewayAddress != "" {
		fields["BOWLINE_GATEWAY_ADDRESS"] = structpb.NewStringValue(n.GatewayAddress)
	}
	if n.StatsAddress != "" {
		fields["BOWLINE_STATS_ADDRESS"] = structpb.NewStringValue(n.StatsAddress)
	}
	if len(n.GatewayPorts) > 0 {
		fields["BOWLINE_GATEWAY_PORTS"] = structpb.NewStringValue(portMap(n.GatewayPorts))
	}
	return &corev3.Node{
		Id:            id,
		Cluster:       n.CanonicalService() + "." + n.Namespace,
		Metadata:      &structpb.Struct{Fields: fields},
		UserAgentName: "bowline",
	}
}

func portMap(m map[uint32]uint32) string {
	keys := make([]uint32, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d=%d", k, m[k]))
	}
	return strings.Join(parts, ",")
}

// CanonicalService is Istio's canonical service name of the workload: the
// service.istio.io/canonical-name label, else app.kubernetes.io/name, else
// app, else the workload name. The node's cluster is "CANONICAL.NAMESPACE",
// as istio-agent names it, and the reporting service of spans.
func (n NodeInfo) CanonicalService() string {
	return telemetry.CanonicalService(n.Labels, n.Workload)
}

package server

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/bowline-mesh/bowline/internal/model"
)

// Node metadata keys (docs/xds.md).
const (
	metaNamespace      = "NAMESPACE"
	metaWorkloadName   = "WORKLOAD_NAME"
	metaLabels         = "LABELS"
	metaServiceAccount = "SERVICE_ACCOUNT"
	metaInstanceIPs    = "INSTANCE_IPS"
	metaGenerator      = "GENERATOR"
	metaProxyType      = "BOWLINE_PROXY_TYPE"
	metaInbound        = "BOWLINE_INBOUND"
	metaOutboundHTTP   = "BOWLINE_OUTBOUND_HTTP"
	metaGatewayPorts   = "BOWLINE_GATEWAY_PORTS"
	metaGatewayAddress = "BOWLINE_GATEWAY_ADDRESS"
	metaInterception   = "INTERCEPTION_MODE"
	metaStatsAddress   = "BOWLINE_STATS_ADDRESS"
)

// NodeError says why a node was rejected; it names the field at fault.
type NodeError struct {
	// Field is "id" or "metadata.KEY".
	Field  string
	Reason string
}

func (e *NodeError) Error() string { return "invalid node " + e.Field + ": " + e.Reason }

// ParseNode checks an xDS node and turns it into the generators' Proxy. The
// id must have Istio's form TYPE~IP~WORKLOAD.NAMESPACE~DOMAIN; metadata keys
// are those of docs/xds.md, and when a key repeats something the id says the
// two must agree.
func ParseNode(node *core.Node) (*model.Proxy, error) {
	if node == nil || node.GetId() == "" {
		return nil, &NodeError{Field: "id", Reason: "missing: the first request on a stream must carry the node"}
	}
	id := node.GetId()
	parts := strings.Split(id, "~")
	if len(parts) != 4 {
		return nil, &NodeError{Field: "id", Reason: fmt.Sprintf("%q has %d fields separated by '~', want 4: TYPE~IP~WORKLOAD.NAMESPACE~DOMAIN", id, len(parts))}
	}
	p := &model.Proxy{ID: id}
	switch t := model.ProxyType(parts[0]); t {
	case model.SidecarProxy, model.Router:
		p.Type = t
	default:
		return nil, &NodeError{Field: "id", Reason: fmt.Sprintf("proxy type %q: want %q or %q", parts[0], model.SidecarProxy, model.Router)}
	}
	if _, err := netip.ParseAddr(parts[1]); err != nil {
		return nil, &NodeError{Field: "id", Reason: fmt.Sprintf("IP %q is not an IP address", parts[1])}
	}
	workload, idNamespace, ok := strings.Cut(parts[2], ".")
	if !ok || workload == "" || idNamespace == "" {
		return nil, &NodeError{Field: "id", Reason: fmt.Sprintf("%q: want WORKLOAD.NAMESPACE", parts[2])}
	}
	md := node.GetMetadata().GetFields()

	str := func(key string) (string, error) {
		v, ok := md[key]
		if !ok {
			return "", nil
		}
		s, ok := v.GetKind().(*structpb.Value_StringValue)
		if !ok {
			return "", &NodeError{Field: "metadata." + key, Reason: "must be a string"}
		}
		return s.StringValue, nil
	}
	var err error
	if p.Namespace, err = str(metaNamespace); err != nil {
		return nil, err
	}
	switch {
	case p.Namespace == "":
		p.Namespace = idNamespace
	case p.Namespace != idNamespace:
		return nil, &NodeError{Field: "metadata." + metaNamespace, Reason: fmt.Sprintf("%q differs from namespace %q in the node id", p.Namespace, idNamespace)}
	}
	if p.WorkloadName, err = str(metaWorkloadName); err != nil {
		return nil, err
	}
	if p.WorkloadName == "" {
		p.WorkloadName = workload
	}
	if p.ServiceAccount, err = str(metaServiceAccount); err != nil {
		return nil, err
	}
	if p.Generator, err = str(metaGenerator); err != nil {
		return nil, err
	}
	if p.Generator != "" && p.Generator != "grpc" {
		return nil, &NodeError{Field: "metadata." + metaGenerator, Reason: fmt.Sprintf("%q: the only generator is \"grpc\" (or none, for proxies)", p.Generator)}
	}
	pt, err := str(metaProxyType)
	if err != nil {
		return nil, err
	}
	if pt != "" && model.ProxyType(pt) != p.Type {
		return nil, &NodeError{Field: "metadata." + metaProxyType, Reason: fmt.Sprintf("%q differs from type %q in the node id", pt, p.Type)}
	}
	if p.Labels, err = labels(md[metaLabels]); err != nil {
		return nil, err
	}
	ips, err := str(metaInstanceIPs)
	if err != nil {
		return nil, err
	}
	if p.IPs, err = instanceIPs(ips, parts[1]); err != nil {
		return nil, err
	}
	inbound, err := str(metaInbound)
	if err != nil {
		return nil, err
	}
	if p.Inbound, err = portMappings(metaInbound, inbound); err != nil {
		return nil, err
	}
	gw, err := str(metaGatewayPorts)
	if err != nil {
		return nil, err
	}
	if p.GatewayPorts, err = portMappings(metaGatewayPorts, gw); err != nil {
		return nil, err
	}
	if p.GatewayAddress, err = str(metaGatewayAddress); err != nil {
		return nil, err
	}
	if p.GatewayAddress != "" {
		if _, err := netip.ParseAddr(p.GatewayAddress); err != nil {
			return nil, &NodeError{Field: "metadata." + metaGatewayAddress, Reason: fmt.Sprintf("%q: want an IP address", p.GatewayAddress)}
		}
	}
	if p.OutboundHTTP, err = str(metaOutboundHTTP); err != nil {
		return nil, err
	}
	if p.OutboundHTTP != "" {
		if _, err := netip.ParseAddrPort(p.OutboundHTTP); err != nil {
			return nil, &NodeError{Field: "metadata." + metaOutboundHTTP, Reason: fmt.Sprintf("%q: want IP:PORT", p.OutboundHTTP)}
		}
	}
	if p.StatsAddress, err = str(metaStatsAddress); err != nil {
		return nil, err
	}
	if p.StatsAddress != "" {
		if _, err := netip.ParseAddrPort(p.StatsAddress); err != nil {
			return nil, &NodeError{Field: "metadata." + metaStatsAddress, Reason: fmt.Sprintf("%q: want IP:PORT", p.StatsAddress)}
		}
	}
	mode, err := str(metaInterception)
	if err != nil {
		return nil, err
	}
	switch m := model.InterceptionMode(mode); m {
	case "", model.InterceptionNone, model.InterceptionRedirect:
		p.InterceptionMode = m
	default:
		return nil, &NodeError{Field: "metadata." + metaInterception, Reason: fmt.Sprintf("%q: want REDIRECT or NONE (TPROXY is not supported)", mode)}
	}
	return p, nil
}

func labels(v *structpb.Value) (map[string]string, error) {
	if v == nil {
		return nil, nil
	}
	s, ok := v.GetKind().(*structpb.Value_StructValue)
	if !ok {
		return nil, &NodeError{Field: "metadata." + metaLabels, Reason: "must be a struct of strings"}
	}
	out := make(map[string]string, len(s.StructValue.GetFields()))
	for k, lv := range s.StructValue.GetFields() {
		sv, ok := lv.GetKind().(*structpb.Value_StringValue)
		if !ok {
			return nil, &NodeError{Field: "metadata." + metaLabels + "." + k, Reason: "must be a string"}
		}
		out[k] = sv.StringValue
	}
	return out, nil
}

// instanceIPs parses INSTANCE_IPS; without it the id's IP is the only one.
func instanceIPs(s, idIP string) ([]string, error) {
	if s == "" {
		return []string{idIP}, nil
	}
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if _, err := netip.ParseAddr(f); err != nil {
			return nil, &NodeError{Field: "metadata." + metaInstanceIPs, Reason: fmt.Sprintf("%q is not an IP address", f)}
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// portMappings parses PORT=PORT[,PORT=PORT...].
func portMappings(key, s string) ([]model.PortMapping, error) {
	if s == "" {
		return nil, nil
	}
	var out []model.PortMapping
	for f := range strings.SplitSeq(s, ",") {
		a, b, ok := strings.Cut(strings.TrimSpace(f), "=")
		if !ok {
			return nil, &NodeError{Field: "metadata." + key, Reason: fmt.Sprintf("%q: want PORT=PORT", f)}
		}
		pa, errA := port(a)
		pb, errB := port(b)
		if errA != nil || errB != nil {
			return nil, &NodeError{Field: "metadata." + key, Reason: fmt.Sprintf("%q: ports must be numbers from 1 to 65535", f)}
		}
		for _, m := range out {
			if m.Port == pa {
				return nil, &NodeError{Field: "metadata." + key, Reason: fmt.Sprintf("port %d listed twice", pa)}
			}
		}
		out = append(out, model.PortMapping{Port: pa, TargetPort: pb})
	}
	return out, nil
}

func port(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return uint32(n), nil
}

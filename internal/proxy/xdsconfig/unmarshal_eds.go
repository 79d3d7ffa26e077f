package xdsconfig

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// UnmarshalClusterLoadAssignment checks a ClusterLoadAssignment and converts it.
func UnmarshalClusterLoadAssignment(c *endpointv3.ClusterLoadAssignment) (*ClusterLoadAssignment, error) {
	out, err := unmarshalCLA(c, "")
	if err != nil {
		return nil, fmt.Errorf("cluster load assignment %q: %w", c.GetClusterName(), err)
	}
	return out, nil
}

func unmarshalCLA(c *endpointv3.ClusterLoadAssignment, path string) (*ClusterLoadAssignment, error) {
	if err := checkFields(c, path, "cluster_name", "endpoints", "policy"); err != nil {
		return nil, err
	}
	out := &ClusterLoadAssignment{ClusterName: c.GetClusterName()}
	for i, le := range c.GetEndpoints() {
		p := joinPath(path, fmt.Sprintf("endpoints[%d]", i))
		if err := checkFields(le, p, "locality", "lb_endpoints", "load_balancing_weight", "priority", "metadata"); err != nil {
			return nil, err
		}
		if le.GetPriority() != 0 {
			continue
		}
		for j, lb := range le.GetLbEndpoints() {
			ep, err := unmarshalLbEndpoint(lb, fmt.Sprintf("%s.lb_endpoints[%d]", p, j))
			if err != nil {
				return nil, err
			}
			out.Endpoints = append(out.Endpoints, *ep)
		}
	}
	return out, nil
}

func unmarshalLbEndpoint(lb *endpointv3.LbEndpoint, path string) (*Endpoint, error) {
	if err := checkFields(lb, path, "endpoint", "health_status", "metadata", "load_balancing_weight"); err != nil {
		return nil, err
	}
	sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
	if sa == nil {
		return nil, fmt.Errorf("field %s.endpoint.address.socket_address: missing", path)
	}
	if sa.GetAddress() == "" || sa.GetPortValue() == 0 || sa.GetPortValue() > 65535 {
		return nil, fmt.Errorf("field %s.endpoint.address.socket_address: invalid address %q port %d", path,
			sa.GetAddress(), sa.GetPortValue())
	}
	ep := &Endpoint{Address: net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))), Weight: 1}
	if w := lb.GetLoadBalancingWeight(); w != nil && w.GetValue() > 0 {
		ep.Weight = w.GetValue()
	}
	switch lb.GetHealthStatus() {
	case corev3.HealthStatus_HEALTHY:
		ep.Health = HealthHealthy
	case corev3.HealthStatus_UNHEALTHY:
		ep.Health = HealthUnhealthy
	case corev3.HealthStatus_DRAINING:
		ep.Health = HealthDraining
	case corev3.HealthStatus_TIMEOUT:
		ep.Health = HealthTimeout
	case corev3.HealthStatus_DEGRADED:
		ep.Health = HealthDegraded
	}
	ep.Workload = workloadFromMetadata(lb.GetMetadata())
	if st := lb.GetMetadata().GetFilterMetadata()["envoy.transport_socket_match"]; st != nil {
		ep.TLSMatch = map[string]string{}
		for k, v := range st.GetFields() {
			if sv, ok := v.GetKind().(*structpb.Value_StringValue); ok {
				ep.TLSMatch[k] = sv.StringValue
			}
		}
	}
	return ep, nil
}

// workloadFromMetadata reads filter_metadata["istio"] as Bowline's
// generators write it (docs/xds.md): {workload, namespace, service_account,
// labels: {app, version, ...}}. The app and version fall back to the
// canonical-service labels; Istio's older single-string form
// workload: "name;namespace;canonical-service;canonical-revision;cluster" is
// still understood.
func workloadFromMetadata(md *corev3.Metadata) WorkloadMeta {
	var w WorkloadMeta
	st := md.GetFilterMetadata()["istio"]
	if st == nil {
		return w
	}
	f := st.GetFields()
	if s := f["workload"].GetStringValue(); strings.Contains(s, ";") {
		parts := strings.Split(s, ";")
		get := func(i int) string {
			if i < len(parts) {
				return parts[i]
			}
			return ""
		}
		w.Name, w.Namespace, w.App, w.Version = get(0), get(1), get(2), get(3)
	} else {
		w.Name = s
	}
	if s := f["namespace"].GetStringValue(); s != "" {
		w.Namespace = s
	}
	labels := f["labels"].GetStructValue().GetFields()
	w.App = firstOf(labels["app"].GetStringValue(), labels["service.istio.io/canonical-name"].GetStringValue(), w.App)
	w.Version = firstOf(labels["version"].GetStringValue(), labels["service.istio.io/canonical-revision"].GetStringValue(), w.Version)
	w.ServiceAccount = f["service_account"].GetStringValue()
	return w
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

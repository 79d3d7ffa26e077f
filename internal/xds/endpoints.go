package xds

import (
	"cmp"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/bowline-mesh/bowline/internal/registry"
)

// selectEndpoints returns the endpoints whose labels contain the subset's.
func selectEndpoints(eps []*registry.Endpoint, labels map[string]string) []*registry.Endpoint {
	if len(labels) == 0 {
		return eps
	}
	var out []*registry.Endpoint
	for _, e := range eps {
		if registry.LabelsMatch(labels, e.Labels) {
			out = append(out, e)
		}
	}
	return out
}

// loadAssignment groups endpoints by locality (sorted), each with its
// weight, health and Istio workload metadata. Locality weights are the sum
// of their endpoints' weights, so grpc-go (which ignores zero-weight
// localities) and locality-weighted Envoy balance like Istio.
func loadAssignment(name string, port registry.Port, eps []*registry.Endpoint, withHealth bool) *endpointv3.ClusterLoadAssignment {
	byLoc := map[string][]*registry.Endpoint{}
	for _, e := range eps {
		byLoc[e.Locality] = append(byLoc[e.Locality], e)
	}
	locs := make([]string, 0, len(byLoc))
	for l := range byLoc {
		locs = append(locs, l)
	}
	slices.Sort(locs)
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	for _, l := range locs {
		lle := &endpointv3.LocalityLbEndpoints{Locality: locality(l)}
		var total uint32
		for _, e := range byLoc[l] {
			w := cmp.Or(e.Weight, 1)
			total += w
			lbe := &endpointv3.LbEndpoint{
				HostIdentifier:      &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(e.Address, e.PortFor(port))}},
				LoadBalancingWeight: u32(w),
				Metadata:            endpointMetadata(e),
			}
			if withHealth {
				lbe.HealthStatus = corev3.HealthStatus_HEALTHY
				if !e.Healthy {
					lbe.HealthStatus = corev3.HealthStatus_UNHEALTHY
				}
			}
			lle.LbEndpoints = append(lle.LbEndpoints, lbe)
		}
		lle.LoadBalancingWeight = u32(total)
		cla.Endpoints = append(cla.Endpoints, lle)
	}
	return cla
}

// locality parses region/zone/subzone. Every endpoint group gets a locality,
// empty when unknown: grpc-go NACKs EDS with a locality-less group.
func locality(l string) *corev3.Locality {
	if l == "" {
		return &corev3.Locality{}
	}
	parts := strings.SplitN(l, "/", 3)
	loc := &corev3.Locality{Region: parts[0]}
	if len(parts) > 1 {
		loc.Zone = parts[1]
	}
	if len(parts) > 2 {
		loc.SubZone = parts[2]
	}
	return loc
}

// endpointMetadata is filter_metadata["istio"]: workload, namespace,
// service_account and the workload's labels; the proxy reads it for the
// destination_* metric labels.
// Endpoints with a sidecar also carry envoy.transport_socket_match
// {tlsMode: istio}, which auto mTLS clusters match on (peerauthn.go).
func endpointMetadata(e *registry.Endpoint) *corev3.Metadata {
	if e.WorkloadName == "" && len(e.Labels) == 0 && !e.Sidecar {
		return nil
	}
	md := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{}}
	if e.Sidecar {
		md.FilterMetadata[metadataTransportSocketMatch] = tlsModeMetadata()
	}
	if e.WorkloadName == "" && len(e.Labels) == 0 {
		return md
	}
	fields := map[string]*structpb.Value{
		"workload":  structpb.NewStringValue(e.WorkloadName),
		"namespace": structpb.NewStringValue(e.Namespace),
	}
	if e.ServiceAccount != "" {
		fields["service_account"] = structpb.NewStringValue(e.ServiceAccount)
	}
	if len(e.Labels) > 0 {
		lf := map[string]*structpb.Value{}
		for k, v := range e.Labels {
			lf[k] = structpb.NewStringValue(v)
		}
		fields["labels"] = structpb.NewStructValue(&structpb.Struct{Fields: lf})
	}
	md.FilterMetadata[metadataIstio] = &structpb.Struct{Fields: fields}
	return md
}

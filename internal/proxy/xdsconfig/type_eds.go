package xdsconfig

// HealthStatus is an endpoint's health from EDS.
type HealthStatus int

// Health statuses; Unknown and Healthy receive traffic.
const (
	HealthUnknown HealthStatus = iota
	HealthHealthy
	HealthUnhealthy
	HealthDraining
	HealthTimeout
	HealthDegraded
)

// ClusterLoadAssignment is a checked envoy.config.endpoint.v3.ClusterLoadAssignment.
type ClusterLoadAssignment struct {
	// ClusterName is the resource name.
	ClusterName string
	// Endpoints are the endpoints of priority 0 (other priorities are ignored).
	Endpoints []Endpoint
}

// Endpoint is one upstream host.
type Endpoint struct {
	// Address is host:port; the host is a name for DNS clusters.
	Address string
	// Weight is the load-balancing weight (default 1).
	Weight uint32
	// Health is the EDS health status.
	Health HealthStatus
	// Workload is the istio workload identity from metadata, when present.
	Workload WorkloadMeta
	// TLSMatch is the envoy.transport_socket_match metadata (string values)
	// that cluster transport_socket_matches select on; nil when absent.
	TLSMatch map[string]string
}

// Routable reports whether an endpoint of this health may receive traffic.
func (h HealthStatus) Routable() bool {
	return h == HealthUnknown || h == HealthHealthy || h == HealthDegraded
}

// WorkloadMeta is what Istio-style endpoint metadata says about a workload.
type WorkloadMeta struct {
	// Name is the workload name.
	Name string
	// Namespace is the workload namespace.
	Namespace string
	// App is the canonical service (app label).
	App string
	// Version is the canonical revision (version label).
	Version string
	// ServiceAccount is the workload's service account, when known; the
	// proxy makes the SPIFFE principal of it with the mesh's trust domain.
	ServiceAccount string
}

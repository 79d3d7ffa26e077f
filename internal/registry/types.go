package registry

import (
	"slices"
	"strings"
)

// Resolution says how a proxy finds a service's endpoints, as in ServiceEntry.
type Resolution int

// Resolution values, named after Istio's ServiceEntry.Resolution.
const (
	// ResolutionStatic: endpoints are IP addresses known to the control plane (EDS).
	ResolutionStatic Resolution = iota
	// ResolutionDNS: endpoint addresses are host names resolved by the proxy (STRICT_DNS).
	ResolutionDNS
	// ResolutionDNSRoundRobin: the proxy resolves one name and uses one address at a time (LOGICAL_DNS).
	ResolutionDNSRoundRobin
	// ResolutionNone: the proxy forwards to the original destination (ORIGINAL_DST).
	ResolutionNone
)

func (r Resolution) String() string {
	switch r {
	case ResolutionStatic:
		return "STATIC"
	case ResolutionDNS:
		return "DNS"
	case ResolutionDNSRoundRobin:
		return "DNS_ROUND_ROBIN"
	case ResolutionNone:
		return "NONE"
	}
	return "UNKNOWN"
}

// Port is one port of a service.
type Port struct {
	// Name is the port name; workloads map it to their own port numbers.
	Name string
	// Number is the port clients connect to.
	Number uint32
	// Protocol is Istio's protocol name in upper case (HTTP, HTTP2, GRPC, TCP, TLS, HTTPS, ...),
	// taken from the protocol field or, when empty, from the name's prefix ("http-web").
	Protocol string
	// TargetPort is the endpoint port when a workload does not name this port; 0 means Number.
	TargetPort uint32
}

// IsHTTP reports whether the port carries HTTP the proxy routes (HTTP/1.1, HTTP/2, gRPC).
func (p Port) IsHTTP() bool {
	switch p.Protocol {
	case "HTTP", "HTTP2", "GRPC", "GRPC-WEB":
		return true
	}
	return false
}

// ProtocolFor returns the protocol of a port as Istio derives it: the
// explicit protocol, else the part of the name before the first '-'.
func ProtocolFor(protocol, name string) string {
	if protocol != "" {
		return strings.ToUpper(protocol)
	}
	prefix, _, _ := strings.Cut(name, "-")
	switch p := strings.ToUpper(prefix); p {
	case "HTTP", "HTTP2", "GRPC", "GRPC-WEB", "HTTPS", "TLS", "TCP", "MONGO", "MYSQL", "REDIS":
		return p
	}
	return "TCP"
}

// Service is one host of a ServiceEntry (a ServiceEntry with n hosts gives n
// Services) with its endpoints. Services in a View are immutable.
type Service struct {
	// Hostname is the service's name as clients use it, verbatim from ServiceEntry.hosts.
	Hostname string
	// Namespace is where the defining object lives.
	Namespace string
	// Name is the defining object's name (the ServiceEntry, or the registration).
	Name string
	// Addresses are the service's virtual IPs (ServiceEntry.addresses).
	Addresses []string
	// Ports are sorted by number.
	Ports []Port
	// Resolution says how endpoints are found.
	Resolution Resolution
	// MeshExternal is true for MESH_EXTERNAL services (no mTLS, no sidecar behind them).
	MeshExternal bool
	// ExportTo is ServiceEntry.exportTo as written ("." / "*" / namespaces; empty means "*").
	ExportTo []string
	// Endpoints are sorted by address, then workload name.
	Endpoints []*Endpoint
}

// Port returns the service port with the given number.
func (s *Service) Port(number uint32) (Port, bool) {
	for _, p := range s.Ports {
		if p.Number == number {
			return p, true
		}
	}
	return Port{}, false
}

// Endpoint is one instance of a service: a WorkloadEntry, an inline
// ServiceEntry endpoint, or a registered workload.
type Endpoint struct {
	// Address is an IP, or a host name for DNS services.
	Address string
	// Ports maps service port names to this endpoint's port numbers.
	Ports map[string]uint32
	// Labels are the workload's labels (subsets select on them).
	Labels map[string]string
	// WorkloadName is the WorkloadEntry or registered workload name ("" for inline endpoints).
	WorkloadName string
	// Namespace is the workload's namespace.
	Namespace string
	// ServiceAccount is the workload's service account.
	ServiceAccount string
	// Locality is region/zone/subzone.
	Locality string
	// Network is the workload's network name.
	Network string
	// Weight is the load-balancing weight; 0 means 1.
	Weight uint32
	// Healthy is false for registered workloads reported unhealthy.
	Healthy bool
	// ContainerPorts maps port names to the ports the workload declares it
	// receives on (Istio's destination.port) where they differ from Ports;
	// see Workload.ContainerPorts.
	ContainerPorts map[string]uint32
	// Sidecar says a mesh proxy fronts the endpoint, so clients may use
	// mTLS (Istio's auto mTLS, endpoint metadata tlsMode istio): true for
	// registered workloads and for WorkloadEntries labelled
	// security.istio.io/tlsMode=istio.
	Sidecar bool
}

// LabelTLSMode is Istio's workload label saying a sidecar terminates mTLS
// for it (value TLSModeIstio).
const (
	LabelTLSMode = "security.istio.io/tlsMode"
	TLSModeIstio = "istio"
)

// PortFor returns the endpoint port for service port p: the workload's port
// of that name, else the target port, else the service port.
func (e *Endpoint) PortFor(p Port) uint32 {
	if n, ok := e.Ports[p.Name]; ok && n != 0 {
		return n
	}
	if p.TargetPort != 0 {
		return p.TargetPort
	}
	return p.Number
}

// Workload is a dynamically registered workload, like a WorkloadEntry created
// by auto-registration. ServiceEntries select it by labels in its namespace.
type Workload struct {
	// ID identifies the registration; "namespace/name" when empty.
	ID string
	// Name is the workload name (WORKLOAD_NAME of its proxy).
	Name string
	// Namespace is required.
	Namespace string
	// Address is the workload's IP (or host name for DNS services).
	Address string
	// Ports maps service port names to the workload's ports.
	Ports map[string]uint32
	// Labels select the workload into services and subsets.
	Labels map[string]string
	// ServiceAccount is the workload's identity.
	ServiceAccount string
	// Locality is region/zone/subzone.
	Locality string
	// Network is the workload's network.
	Network string
	// Weight is the load-balancing weight; 0 means 1.
	Weight uint32
	// Healthy must be true for traffic to reach the workload; register with
	// false to wait for a first SetHealth(id, true).
	Healthy bool
	// ContainerPorts maps port names to the workload's declared container
	// ports when its sidecar listens elsewhere (`bowline up` without
	// --netns: every replica's sidecar takes a free port on 127.0.0.1). They
	// are what AuthorizationPolicy `ports` and destination.port name, as the
	// container port is in a pod. Nil: the ports in Ports.
	ContainerPorts map[string]uint32
	// Pod marks a Kubernetes pod (given by SetKubernetes, not registered):
	// it runs a sidecar only when labelled security.istio.io/tlsMode=istio,
	// while a registered workload always does.
	Pod bool
}

// Key returns the registration id.
func (w Workload) Key() string {
	if w.ID != "" {
		return w.ID
	}
	return w.Namespace + "/" + w.Name
}

// View is an immutable set of services. Views from a Registry are never
// modified after they are returned.
type View struct {
	services []*Service
}

// NewView returns a View of services, sorted by hostname then namespace.
func NewView(services []*Service) *View {
	s := slices.Clone(services)
	slices.SortStableFunc(s, func(a, b *Service) int {
		if c := strings.Compare(a.Hostname, b.Hostname); c != 0 {
			return c
		}
		return strings.Compare(a.Namespace, b.Namespace)
	})
	return &View{services: s}
}

// Services returns every service, sorted by hostname then namespace. Callers must not modify them.
func (v *View) Services() []*Service {
	if v == nil {
		return nil
	}
	return v.services
}

// LabelsMatch reports whether labels contain every key/value of selector (an
// empty selector matches everything).
func LabelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

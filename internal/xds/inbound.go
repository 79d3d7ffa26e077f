package xds

import (
	"slices"
	"strings"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/bowline-mesh/bowline/internal/registry"
)

// inboundPort is what the mesh model says about one port a sidecar listens
// on for mesh traffic (BOWLINE_INBOUND's PORT): the services whose endpoints
// of this workload use it, and the port Istio's policies name for it.
type inboundPort struct {
	// target is the port the workload receives on (Istio's destination.port,
	// the container port): the endpoint's declared container port, else the
	// listen port itself (pods, VMs, `bowline up --netns`).
	target uint32
	// servicePort is the first such service port's number (Istio names the
	// inbound virtual host after it), else the listen port.
	servicePort uint32
	// http: the first such service port is HTTP (or none is known).
	http bool
	// services are the services served on the port, first found first,
	// one per host name.
	services []*registry.Service
}

// inbound returns the model's view of inbound port port, computed once per
// proxy for all its inbound ports.
func (g *gen) inbound(port uint32) inboundPort {
	if g.inboundPorts == nil {
		g.inboundPorts = g.newInboundPorts()
	}
	if in, ok := g.inboundPorts[port]; ok {
		return in
	}
	return inboundPort{target: port, servicePort: port, http: true}
}

func (g *gen) newInboundPorts() map[uint32]inboundPort {
	out := make(map[uint32]inboundPort, len(g.proxy.Inbound))
	listens := make(map[uint32]bool, len(g.proxy.Inbound))
	for _, m := range g.proxy.Inbound {
		listens[m.Port] = true
	}
	for _, r := range g.snap.EndpointsAt(g.proxy.IPs) {
		for _, sp := range r.Service.Ports {
			port := r.Endpoint.PortFor(sp)
			if !listens[port] {
				continue
			}
			in, seen := out[port]
			if !seen {
				in = inboundPort{target: port, servicePort: sp.Number, http: sp.IsHTTP()}
				if cp := r.Endpoint.ContainerPorts[sp.Name]; cp != 0 {
					in.target = cp
				}
			}
			host := r.Service.Hostname
			if !slices.ContainsFunc(in.services, func(s *registry.Service) bool { return s.Hostname == host }) {
				in.services = append(in.services, r.Service)
			}
			out[port] = in
		}
	}
	return out
}

// listenPorts are the port a listener's policies name (target: Istio's
// destination.port) and the port its connections arrive on (listen).
type listenPorts struct{ target, listen uint32 }

// inboundListen is listenPorts of the inbound listener on port.
func (g *gen) inboundListen(port uint32) listenPorts {
	return listenPorts{target: g.inbound(port).target, listen: port}
}

// retargetPorts rewrites the port conditions of RBAC rules for the inbound
// listener on listen whose workload port is target: a policy names target
// (Istio's destination.port) while connections arrive on listen, so target
// becomes listen and any other port matches nothing on this listener.
func retargetPorts(rbac *rbacv3.RBAC, target, listen uint32) {
	if rbac == nil || target == listen {
		return
	}
	for _, p := range rbac.GetPolicies() {
		retargetPermissions(p.GetPermissions(), target, listen)
	}
}

func retargetPermissions(perms []*rbacv3.Permission, target, listen uint32) {
	for _, p := range perms {
		switch r := p.GetRule().(type) {
		case *rbacv3.Permission_AndRules:
			retargetPermissions(r.AndRules.GetRules(), target, listen)
		case *rbacv3.Permission_OrRules:
			retargetPermissions(r.OrRules.GetRules(), target, listen)
		case *rbacv3.Permission_NotRule:
			retargetPermissions([]*rbacv3.Permission{r.NotRule}, target, listen)
		case *rbacv3.Permission_DestinationPort:
			if r.DestinationPort == target {
				r.DestinationPort = listen
			} else {
				p.Rule = &rbacv3.Permission_NotRule{NotRule: &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}}
			}
		}
	}
}

// serviceMetadata is Istio's telemetry metadata of an inbound cluster,
// filter_metadata.istio.services: [{host, name, namespace}] for every
// service served on the port, from which the server's proxy reports
// destination_service, destination_service_name and
// destination_service_namespace (reporter="destination").
func (g *gen) serviceMetadata(svcs []*registry.Service) *structpb.Value {
	list := make([]any, 0, len(svcs))
	for _, s := range svcs {
		list = append(list, map[string]any{"host": s.Hostname, "name": g.serviceName(s), "namespace": s.Namespace})
	}
	v, err := structpb.NewList(list)
	if err != nil {
		panic(err) // only strings: cannot fail
	}
	return structpb.NewListValue(v)
}

// serviceName is a service's short name as Istio's metrics report it: the
// first label of a Kubernetes-style host <name>.<namespace>.svc.<domain>,
// else the host name itself (what Istio reports for ServiceEntry hosts).
func (g *gen) serviceName(s *registry.Service) string {
	suffix := "." + s.Namespace + ".svc." + g.snap.Domain()
	if name, ok := strings.CutSuffix(s.Hostname, suffix); ok && name != "" && !strings.Contains(name, ".") {
		return name
	}
	return s.Hostname
}

// inboundOperation is the span name of inbound requests on port: the
// "host:port/*" of the first service this workload serves there (Istio's
// inbound trace operation), or "inbound|PORT" when no service selects it.
func (g *gen) inboundOperation(port uint32) string {
	for _, r := range g.snap.EndpointsAt(g.proxy.IPs) {
		for _, sp := range r.Service.Ports {
			if r.Endpoint.PortFor(sp) == port {
				return r.Service.Hostname + ":" + portName(sp.Number) + "/*"
			}
		}
	}
	return "inbound|" + portName(port)
}

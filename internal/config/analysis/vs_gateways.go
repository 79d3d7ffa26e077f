package analysis

import (
	"fmt"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/config"
)

// meshGateway is the reserved gateway name for sidecars.
const meshGateway = "mesh"

// gatewayReferenceAnalyzer checks that every gateway a VirtualService binds
// to exists (IST0101) and that it serves at least one of the VirtualService's
// hosts (IST0132).
type gatewayReferenceAnalyzer struct{}

var _ Analyzer = gatewayReferenceAnalyzer{}

func (gatewayReferenceAnalyzer) Name() string { return "virtualservice.GatewayAnalyzer" }
func (gatewayReferenceAnalyzer) Description() string {
	return "Checks the gateways associated with each virtual service"
}

// gatewayRef resolves a VirtualService's gateway reference: "name" (the
// VirtualService's namespace), "ns/name", or the legacy "name.ns.svc..." form.
func gatewayRef(ref, vsNamespace string) (ns, name string) {
	if i := strings.Index(ref, "/"); i >= 0 {
		return ref[:i], ref[i+1:]
	}
	if parts := strings.Split(ref, "."); len(parts) > 1 {
		return parts[1], parts[0]
	}
	return vsNamespace, ref
}

func (gatewayReferenceAnalyzer) Analyze(c *Context) {
	for _, o := range c.Objects(config.KindVirtualService) {
		vs, ok := o.Spec.(*networking.VirtualService)
		if !ok {
			continue
		}
		for i, ref := range vs.GetGateways() {
			if ref == meshGateway {
				continue
			}
			path := fmt.Sprintf("spec.gateways[%d]", i)
			ns, name := gatewayRef(ref, o.Meta.Namespace)
			gwObj := c.Find(config.KindGateway, ns, name)
			if gwObj == nil {
				c.Report(ReferencedResourceNotFound, o, path, "gateway", ref)
			}
			if !vsHostInGateway(gwObj, vs.GetHosts(), o.Meta.Namespace) {
				c.Report(VirtualServiceHostNotFoundInGateway, o, path,
					vs.GetHosts(), o.Meta.Namespace+"/"+o.Meta.Name, ns+"/"+name)
			}
		}
	}
}

// vsHostInGateway reports whether any VirtualService host is served by a
// server of gw visible to vsNamespace ("ns/host" server hosts apply to ns
// only; "*/host" and "./host" as in Istio).
func vsHostInGateway(gwObj *config.Object, vsHosts []string, vsNamespace string) bool {
	if gwObj == nil {
		return false
	}
	gw, ok := gwObj.Spec.(*networking.Gateway)
	if !ok {
		return false
	}
	for _, s := range gw.GetServers() {
		for _, gh := range s.GetHosts() {
			ns, h := "*", gh
			if i := strings.Index(gh, "/"); i >= 0 {
				ns, h = gh[:i], gh[i+1:]
				if ns == "." {
					ns = gwObj.Meta.Namespace
				}
			}
			if ns != "*" && ns != vsNamespace {
				continue
			}
			for _, vh := range vsHosts {
				if hostsMatch(h, vh) {
					return true
				}
			}
		}
	}
	return false
}

// conflictingMeshGatewayHostsAnalyzer reports VirtualServices bound to the
// mesh gateway that define the same host for the same namespaces (IST0109).
type conflictingMeshGatewayHostsAnalyzer struct{}

var _ Analyzer = conflictingMeshGatewayHostsAnalyzer{}

func (conflictingMeshGatewayHostsAnalyzer) Name() string {
	return "virtualservice.ConflictingMeshGatewayHostsAnalyzer"
}
func (conflictingMeshGatewayHostsAnalyzer) Description() string {
	return "Checks if multiple virtual services associated with the mesh gateway have conflicting hosts"
}

func (conflictingMeshGatewayHostsAnalyzer) Analyze(c *Context) {
	domain := c.opts.domain()
	byHost := map[string][]*config.Object{}
	var order []string
	for _, o := range c.Objects(config.KindVirtualService) {
		vs, ok := o.Spec.(*networking.VirtualService)
		if !ok {
			continue
		}
		mesh := len(vs.GetGateways()) == 0
		for _, g := range vs.GetGateways() {
			if g == meshGateway {
				mesh = true
			}
		}
		if !mesh {
			continue
		}
		for _, scope := range exportScopes(vs.GetExportTo(), o.Meta.Namespace) {
			seen := map[string]bool{}
			for _, h := range vs.GetHosts() {
				key := scope + "/" + fqdn(h, o.Meta.Namespace, domain)
				if seen[key] {
					continue
				}
				seen[key] = true
				if byHost[key] == nil {
					order = append(order, key)
				}
				byHost[key] = append(byHost[key], o)
			}
		}
	}
	for _, key := range order {
		objs := byHost[key]
		if len(objs) < 2 {
			continue
		}
		names := make([]string, len(objs))
		for i, o := range objs {
			names[i] = o.Meta.Namespace + "/" + o.Meta.Name
		}
		for _, o := range objs {
			c.Report(ConflictingMeshGatewayVirtualServiceHosts, o, "metadata.name", strings.Join(names, ","), key)
		}
	}
}

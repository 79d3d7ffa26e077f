package model

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/gatewayapi"
)

// VirtualService is a root VirtualService with hosts, gateways and
// destinations resolved and delegate routes inlined.
type VirtualService struct {
	Name, Namespace string
	// Hosts are FQDNs or wildcards.
	Hosts []string
	// Gateways are "mesh" or "namespace/name"; ["mesh"] when the spec lists none.
	Gateways []string
	ExportTo []string
	// HTTP routes: copies of the spec's with destination and mirror hosts
	// resolved to FQDNs, and each delegating route replaced by the delegate's
	// routes with the root match merged in.
	HTTP []*networking.HTTPRoute
	// TCP routes, destinations resolved.
	TCP []*networking.TCPRoute
	// GatewaySemantics is set for VirtualServices made from Gateway API
	// routes: path prefixes match whole segments and a prefix rewrite to
	// "/" removes the prefix (gatewayapi.SemanticsAnnotation).
	GatewaySemantics bool
	// TLS routes (matched by SNI), destinations resolved.
	TLS []*networking.TLSRoute
}

// Ref returns "namespace/name".
func (v *VirtualService) Ref() string { return v.Namespace + "/" + v.Name }

// AppliesTo reports whether the VirtualService is bound to gateway ("mesh" or "ns/name").
func (v *VirtualService) AppliesTo(gateway string) bool { return slices.Contains(v.Gateways, gateway) }

func buildVirtualServices(objs []*config.Object, domain string) ([]*VirtualService, []string) {
	delegates := map[string]*config.Object{}
	for _, o := range objs {
		if len(o.Spec.(*networking.VirtualService).GetHosts()) == 0 {
			delegates[o.Meta.Namespace+"/"+o.Meta.Name] = o
		}
	}
	var out []*VirtualService
	var problems []string
	for _, o := range objs {
		spec := o.Spec.(*networking.VirtualService)
		if len(spec.GetHosts()) == 0 {
			continue // delegates apply only through a root
		}
		ns := o.Meta.Namespace
		vs := &VirtualService{Name: o.Meta.Name, Namespace: ns, ExportTo: spec.GetExportTo(),
			GatewaySemantics: o.Meta.Annotations[gatewayapi.SemanticsAnnotation] == "gateway"}
		for _, h := range spec.GetHosts() {
			vs.Hosts = append(vs.Hosts, ResolveHost(h, ns, domain))
		}
		vs.Gateways = resolveGateways(spec.GetGateways(), ns)
		for i, r := range spec.GetHttp() {
			if d := r.GetDelegate(); d != nil {
				dns := d.GetNamespace()
				if dns == "" {
					dns = ns
				}
				dobj, ok := delegates[dns+"/"+d.GetName()]
				if !ok {
					problems = append(problems, fmt.Sprintf("%s: spec.http[%d].delegate: VirtualService %s/%s not found or has hosts", o.Ref(), i, dns, d.GetName()))
					continue
				}
				dspec := dobj.Spec.(*networking.VirtualService)
				if !exportedTo(dspec.GetExportTo(), dns, ns) {
					problems = append(problems, fmt.Sprintf("%s: spec.http[%d].delegate: VirtualService %s/%s is not exported to namespace %s", o.Ref(), i, dns, d.GetName(), ns))
					continue
				}
				for _, dr := range dspec.GetHttp() {
					if dr.GetDelegate() != nil {
						problems = append(problems, fmt.Sprintf("%s: delegate VirtualService %s/%s delegates again (only one level is allowed)", o.Ref(), dns, d.GetName()))
						continue
					}
					merged, ok := mergeDelegateRoute(r, dr)
					if ok {
						vs.HTTP = append(vs.HTTP, resolveHTTPRoute(merged, dns, domain))
					}
				}
				continue
			}
			vs.HTTP = append(vs.HTTP, resolveHTTPRoute(proto.Clone(r).(*networking.HTTPRoute), ns, domain))
		}
		for _, r := range spec.GetTcp() {
			c := proto.Clone(r).(*networking.TCPRoute)
			for _, rd := range c.GetRoute() {
				resolveDestination(rd.GetDestination(), ns, domain)
			}
			vs.TCP = append(vs.TCP, c)
		}
		for _, r := range spec.GetTls() {
			c := proto.Clone(r).(*networking.TLSRoute)
			for _, rd := range c.GetRoute() {
				resolveDestination(rd.GetDestination(), ns, domain)
			}
			for _, m := range c.GetMatch() {
				for i, g := range m.GetGateways() {
					m.Gateways[i] = resolveGateway(g, ns)
				}
			}
			vs.TLS = append(vs.TLS, c)
		}
		out = append(out, vs)
	}
	return out, problems
}

func resolveGateways(gws []string, ns string) []string {
	if len(gws) == 0 {
		return []string{MeshGateway}
	}
	out := make([]string, 0, len(gws))
	for _, g := range gws {
		out = append(out, resolveGateway(g, ns))
	}
	return out
}

func resolveGateway(g, ns string) string {
	if g == MeshGateway || strings.Contains(g, "/") {
		return g
	}
	if i := strings.IndexByte(g, '.'); i > 0 { // legacy "name.namespace[.svc.cluster.local]"
		rest := g[i+1:]
		gns, _, _ := strings.Cut(rest, ".")
		return gns + "/" + g[:i]
	}
	return ns + "/" + g
}

func resolveHTTPRoute(r *networking.HTTPRoute, ns, domain string) *networking.HTTPRoute {
	for _, d := range r.GetRoute() {
		resolveDestination(d.GetDestination(), ns, domain)
	}
	resolveDestination(r.GetMirror(), ns, domain)
	for _, m := range r.GetMirrors() {
		resolveDestination(m.GetDestination(), ns, domain)
	}
	for _, m := range r.GetMatch() {
		for i, g := range m.GetGateways() {
			m.Gateways[i] = resolveGateway(g, ns)
		}
	}
	return r
}

func resolveDestination(d *networking.Destination, ns, domain string) {
	if d != nil {
		d.Host = ResolveHost(d.GetHost(), ns, domain)
	}
}

// mergeDelegateRoute combines a root route that delegates with one route of
// the delegate: the delegate's actions under the intersection of both
// matches. ok is false when the matches cannot both hold (Istio drops such
// routes).
func mergeDelegateRoute(root, del *networking.HTTPRoute) (*networking.HTTPRoute, bool) {
	out := proto.Clone(del).(*networking.HTTPRoute)
	if len(root.GetMatch()) == 0 {
		return out, true
	}
	if len(del.GetMatch()) == 0 {
		out.Match = nil
		for _, m := range root.GetMatch() {
			out.Match = append(out.Match, proto.Clone(m).(*networking.HTTPMatchRequest))
		}
		return out, true
	}
	out.Match = nil
	for _, rm := range root.GetMatch() {
		for _, dm := range del.GetMatch() {
			if m, ok := mergeMatch(rm, dm); ok {
				out.Match = append(out.Match, m)
			}
		}
	}
	return out, len(out.Match) > 0
}

func mergeMatch(root, del *networking.HTTPMatchRequest) (*networking.HTTPMatchRequest, bool) {
	m := proto.Clone(del).(*networking.HTTPMatchRequest)
	if m.Uri == nil {
		m.Uri = root.GetUri()
	} else if root.GetUri() != nil && !uriWithin(m.Uri, root.GetUri()) {
		return nil, false
	}
	if m.Scheme == nil {
		m.Scheme = root.GetScheme()
	}
	if m.Method == nil {
		m.Method = root.GetMethod()
	}
	if m.Authority == nil {
		m.Authority = root.GetAuthority()
	}
	if m.Port == 0 {
		m.Port = root.GetPort()
	}
	if len(m.Gateways) == 0 {
		m.Gateways = root.GetGateways()
	}
	if m.SourceNamespace == "" {
		m.SourceNamespace = root.GetSourceNamespace()
	}
	m.Headers = mergeStringMap(root.GetHeaders(), m.Headers)
	m.WithoutHeaders = mergeStringMap(root.GetWithoutHeaders(), m.WithoutHeaders)
	m.QueryParams = mergeStringMap(root.GetQueryParams(), m.QueryParams)
	if len(root.GetSourceLabels()) > 0 {
		if m.SourceLabels == nil {
			m.SourceLabels = map[string]string{}
		}
		for k, v := range root.GetSourceLabels() {
			if _, ok := m.SourceLabels[k]; !ok {
				m.SourceLabels[k] = v
			}
		}
	}
	if root.GetIgnoreUriCase() {
		m.IgnoreUriCase = true
	}
	return m, true
}

func mergeStringMap(root, del map[string]*networking.StringMatch) map[string]*networking.StringMatch {
	if len(root) == 0 {
		return del
	}
	out := map[string]*networking.StringMatch{}
	for k, v := range root {
		out[k] = v
	}
	for k, v := range del {
		out[k] = v
	}
	return out
}

// uriWithin reports whether every path matched by del is also matched by root,
// for the prefix and exact forms Istio checks.
func uriWithin(del, root *networking.StringMatch) bool {
	rp, ok := root.GetMatchType().(*networking.StringMatch_Prefix)
	if !ok {
		return proto.Equal(del, root)
	}
	switch d := del.GetMatchType().(type) {
	case *networking.StringMatch_Prefix:
		return strings.HasPrefix(d.Prefix, rp.Prefix)
	case *networking.StringMatch_Exact:
		return strings.HasPrefix(d.Exact, rp.Prefix)
	}
	return true // regexes cannot be compared; keep the delegate's
}

// VirtualServicesFor returns the VirtualServices applying to p for gateway:
// "mesh" for sidecars, or a Gateway's "namespace/name". They are visible to
// p's namespace (exportTo) and, for sidecars, in p's Sidecar scope.
func (s *Snapshot) VirtualServicesFor(p *Proxy, gateway string) []*VirtualService {
	var scope *Scope
	if gateway == MeshGateway {
		scope = s.ScopeFor(p)
	}
	var out []*VirtualService
	for _, vs := range s.virtualServices {
		if vs.AppliesTo(gateway) && exportedTo(vs.ExportTo, vs.Namespace, p.Namespace) &&
			scope.Allows(vs.Namespace, vs.Hosts...) {
			out = append(out, vs)
		}
	}
	return out
}

// VirtualServiceForHost picks, among vss, the one that routes host: an
// exact host match beats a wildcard, a longer wildcard a shorter one, and on
// a tie the one in p's namespace, then snapshot order, wins.
func VirtualServiceForHost(p *Proxy, vss []*VirtualService, host string) *VirtualService {
	var best *VirtualService
	bestScore := -1
	for _, vs := range vss {
		for _, h := range vs.Hosts {
			if !HostMatches(h, host) {
				continue
			}
			score := hostSpecificity(h) * 2
			if vs.Namespace == p.Namespace {
				score++
			}
			if score > bestScore {
				best, bestScore = vs, score
			}
		}
	}
	return best
}

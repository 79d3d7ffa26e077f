package gatewayapi

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// SemanticsAnnotation marks a generated VirtualService as carrying
// Gateway API semantics: a path prefix matches whole path elements
// ("/foo" matches "/foo/bar", not "/foobar") and a prefix rewrite to "/"
// removes the prefix.
const SemanticsAnnotation = "internal.bowline.dev/route-semantics"

// mergedVS gathers the routes of every route object bound to one host of
// one Istio gateway (or of the mesh), to be ordered by the spec's
// precedence across objects.
type mergedVS struct {
	gateway   string
	host      string
	namespace string
	exportTo  []string
	first     *config.Object
	routes    []*rankedRoute
}

type rankedRoute struct {
	route *networking.HTTPRoute
}

// target is one place a route attaches: an Istio gateway (a listener) with
// the hosts it serves there, or the mesh for a Service.
type target struct {
	gateway string
	hosts   []string
	port    uint32
	// listenerPort is the port of the listener a gateway target is on.
	listenerPort uint32
	ns           string
	exportTo     []string
}

// commonRoute is what attachment reads of HTTPRoute and GRPCRoute alike.
type commonRoute struct {
	obj       *config.Object
	parents   []gwv1.ParentReference
	hostnames []gwv1.Hostname
}

func (t *translator) routes() {
	for _, o := range t.routeObjs {
		var c commonRoute
		var convert func() ([]*networking.HTTPRoute, refResult)
		switch spec := o.Spec.(type) {
		case *gwv1.HTTPRouteSpec:
			c = commonRoute{o, spec.ParentRefs, spec.Hostnames}
			convert = func() ([]*networking.HTTPRoute, refResult) { return t.convertHTTPRoute(o, spec) }
		case *gwv1.GRPCRouteSpec:
			c = commonRoute{o, spec.ParentRefs, spec.Hostnames}
			convert = func() ([]*networking.HTTPRoute, refResult) { return t.convertGRPCRoute(o, spec) }
		case *gwv1.TCPRouteSpec:
			t.l4Route(commonRoute{o, spec.ParentRefs, nil}, rulesBackends(spec.Rules, func(r gwv1.TCPRouteRule) []gwv1.BackendRef { return r.BackendRefs }))
			continue
		case *gwv1.TLSRouteSpec:
			t.l4Route(commonRoute{o, spec.ParentRefs, spec.Hostnames}, rulesBackends(spec.Rules, func(r gwv1.TLSRouteRule) []gwv1.BackendRef { return r.BackendRefs }))
			continue
		default:
			continue
		}
		routes, refs := convert()
		st := Status{Kind: o.GVK.Kind, Namespace: o.Meta.Namespace, Name: o.Meta.Name}
		report := false
		for _, ref := range c.parents {
			targets, ps, ours := t.attach(c, ref)
			if !ours {
				continue
			}
			report = true
			ps.Conditions = append(ps.Conditions, refs.condition(o.Meta.Generation))
			st.Parents = append(st.Parents, ps)
			for _, tg := range targets {
				for _, h := range tg.hosts {
					m := t.mergedFor(tg, h, o)
					for _, r := range routes {
						r = proto.Clone(r).(*networking.HTTPRoute)
						if tg.port != 0 {
							for _, mt := range r.Match {
								mt.Port = tg.port
							}
							if len(r.Match) == 0 {
								r.Match = []*networking.HTTPMatchRequest{{Port: tg.port}}
							}
						}
						m.routes = append(m.routes, &rankedRoute{route: r})
					}
				}
			}
		}
		if report {
			t.out.Status = append(t.out.Status, st)
		}
	}
}

func (t *translator) mergedFor(tg target, host string, o *config.Object) *mergedVS {
	for _, m := range t.merged {
		if m.gateway == tg.gateway && m.host == host && m.namespace == tg.ns {
			return m
		}
	}
	m := &mergedVS{gateway: tg.gateway, host: host, namespace: tg.ns, exportTo: tg.exportTo, first: o}
	t.merged = append(t.merged, m)
	return m
}

// parentStatus starts the status of one parentRef.
func parentStatus(ref gwv1.ParentReference) gwv1.RouteParentStatus {
	return gwv1.RouteParentStatus{ParentRef: ref, ControllerName: ControllerName}
}

func accepted(ok bool, reason gwv1.RouteConditionReason, msg string, gen int64) metav1.Condition {
	return cond(string(gwv1.RouteConditionAccepted), ok, string(reason), msg, gen)
}

// attach resolves one parentRef of a route. ours is false for a Gateway
// of another controller's class (its controller reports on it).
func (t *translator) attach(c commonRoute, ref gwv1.ParentReference) (targets []target, ps gwv1.RouteParentStatus, ours bool) {
	o := c.obj
	gen := o.Meta.Generation
	ps = parentStatus(ref)
	group, kind := gwv1.GroupName, "Gateway"
	if ref.Group != nil {
		group = string(*ref.Group)
	}
	if ref.Kind != nil {
		kind = string(*ref.Kind)
	}
	ns := o.Meta.Namespace
	if ref.Namespace != nil {
		ns = string(*ref.Namespace)
	}
	switch {
	case group == gwv1.GroupName && kind == "Gateway":
	case group == "" && kind == "Service", group == config.GroupNetworking && kind == "ServiceEntry":
		if o.GVK.Kind == config.KindTCPRoute || o.GVK.Kind == config.KindTLSRoute {
			ps.Conditions = append(ps.Conditions, accepted(false, gwv1.RouteReasonUnsupportedValue, o.GVK.Kind+" on a Service (mesh) is not supported yet", gen))
			return nil, ps, true
		}
		return t.attachMesh(c, ref, group, kind, ns)
	default:
		ps.Conditions = append(ps.Conditions, accepted(false, gwv1.RouteReasonInvalidKind, fmt.Sprintf("parentRef kind %s/%s is not supported", group, kind), gen))
		return nil, ps, true
	}
	g := t.gws[ns+"/"+string(ref.Name)]
	if g == nil {
		for _, gw := range t.gwObjs {
			if gw.Meta.Namespace == ns && gw.Meta.Name == string(ref.Name) {
				return nil, ps, false // another controller's Gateway
			}
		}
		ps.Conditions = append(ps.Conditions, accepted(false, gwv1.RouteReasonNoMatchingParent, fmt.Sprintf("Gateway %s/%s not found", ns, ref.Name), gen))
		return nil, ps, true
	}
	sawListener, sawKindOrNS, sawHost := false, false, false
	for _, li := range g.listeners {
		if ref.SectionName != nil && *ref.SectionName != li.l.Name {
			continue
		}
		if ref.Port != nil && *ref.Port != li.l.Port {
			continue
		}
		sawListener = true
		if !li.accepted || !kindAllowed(li.status.SupportedKinds, o.GVK.Kind) || !namespaceAllowed(li.l, g.obj.Meta.Namespace, t.namespaceLabels(o.Meta.Namespace)) {
			continue
		}
		sawKindOrNS = true
		hosts := intersectHosts(li.l.Hostname, c.hostnames)
		if len(hosts) == 0 {
			continue
		}
		sawHost = true
		// A route attaches to an accepted listener even while the
		// listener's refs are unresolved (attachedRoutes counts it); only a
		// programmed listener serves it.
		li.status.AttachedRoutes++
		if li.valid {
			targets = append(targets, target{gateway: li.istioRef, hosts: hosts, ns: o.Meta.Namespace, listenerPort: uint32(li.l.Port)})
		}
	}
	switch {
	case !sawListener:
		ps.Conditions = append(ps.Conditions, accepted(false, gwv1.RouteReasonNoMatchingParent, "no listener matches the parentRef's sectionName or port", gen))
	case !sawKindOrNS:
		ps.Conditions = append(ps.Conditions, accepted(false, gwv1.RouteReasonNotAllowedByListeners, "no listener allows routes of this kind from namespace "+o.Meta.Namespace, gen))
	case !sawHost:
		ps.Conditions = append(ps.Conditions, accepted(false, gwv1.RouteReasonNoMatchingListenerHostname, "no hostname of the route matches a listener hostname", gen))
	default:
		ps.Conditions = append(ps.Conditions, accepted(true, gwv1.RouteReasonAccepted, "Route was valid", gen))
	}
	return targets, ps, true
}

// attachMesh binds a route to a Service (GAMMA): the routes shape what
// sidecars send to that Service. A route in the Service's namespace
// applies to every client (producer route); elsewhere only to clients in
// the route's namespace (consumer route).
func (t *translator) attachMesh(c commonRoute, ref gwv1.ParentReference, group, kind, ns string) ([]target, gwv1.RouteParentStatus, bool) {
	o := c.obj
	ps := parentStatus(ref)
	svc := t.lookupService(group, kind, ns, string(ref.Name))
	if svc == nil {
		ps.Conditions = append(ps.Conditions, accepted(false, gwv1.RouteReasonNoMatchingParent, fmt.Sprintf("%s %s/%s not found", kind, ns, ref.Name), o.Meta.Generation))
		return nil, ps, true
	}
	tg := target{gateway: meshGateway, hosts: []string{svc.Hostname}, ns: o.Meta.Namespace, exportTo: []string{"*"}}
	if svc.Namespace != o.Meta.Namespace {
		tg.exportTo = []string{"."}
	}
	if ref.Port != nil {
		if _, ok := svc.Port(uint32(*ref.Port)); !ok {
			ps.Conditions = append(ps.Conditions, accepted(false, gwv1.RouteReasonNoMatchingParent, fmt.Sprintf("%s %s/%s has no port %d", kind, ns, ref.Name, *ref.Port), o.Meta.Generation))
			return nil, ps, true
		}
		tg.port = uint32(*ref.Port)
	}
	ps.Conditions = append(ps.Conditions, accepted(true, gwv1.RouteReasonAccepted, "Route was valid", o.Meta.Generation))
	return []target{tg}, ps, true
}

func kindAllowed(kinds []gwv1.RouteGroupKind, kind string) bool {
	for _, k := range kinds {
		if string(k.Kind) == kind && (k.Group == nil || string(*k.Group) == gwv1.GroupName) {
			return true
		}
	}
	return false
}

// namespaceLabels returns the labels of namespace ns: those of its
// Namespace object when the objects have one (Kubernetes), else only
// kubernetes.io/metadata.name, which Kubernetes sets on every namespace
// (local mode).
func (t *translator) namespaceLabels(ns string) namespaceLabels {
	if l, ok := t.namespaces[ns]; ok {
		out := namespaceLabels{"kubernetes.io/metadata.name": ns}
		for k, v := range l {
			out[k] = v
		}
		return out
	}
	return namespaceLabels{"kubernetes.io/metadata.name": ns}
}

// namespaceAllowed applies a listener's allowedRoutes.namespaces to a
// route in the namespace of routeNS (its name is kubernetes.io/metadata.name).
func namespaceAllowed(l gwv1.Listener, gwNS string, routeNS namespaceLabels) bool {
	from := gwv1.NamespacesFromSame
	var sel *metav1.LabelSelector
	if l.AllowedRoutes != nil && l.AllowedRoutes.Namespaces != nil {
		if l.AllowedRoutes.Namespaces.From != nil {
			from = *l.AllowedRoutes.Namespaces.From
		}
		sel = l.AllowedRoutes.Namespaces.Selector
	}
	switch from {
	case gwv1.NamespacesFromAll:
		return true
	case gwv1.NamespacesFromSame:
		return gwNS == routeNS["kubernetes.io/metadata.name"]
	case gwv1.NamespacesFromSelector:
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			return false
		}
		return s.Matches(routeNS)
	}
	return false
}

// namespaceLabels adapts a map to labels.Labels.
type namespaceLabels map[string]string

func (n namespaceLabels) Has(k string) bool              { _, ok := n[k]; return ok }
func (n namespaceLabels) Get(k string) string            { return n[k] }
func (n namespaceLabels) Lookup(k string) (string, bool) { v, ok := n[k]; return v, ok }

// intersectHosts returns the hosts a route serves on a listener: the
// route's hostnames that the listener's matches, narrowed to the more
// specific of each pair; "*" when neither names any.
func intersectHosts(listener *gwv1.Hostname, route []gwv1.Hostname) []string {
	if listener == nil || *listener == "" {
		if len(route) == 0 {
			return []string{"*"}
		}
		out := make([]string, len(route))
		for i, h := range route {
			out[i] = string(h)
		}
		return out
	}
	l := string(*listener)
	if len(route) == 0 {
		return []string{l}
	}
	var out []string
	for _, rh := range route {
		r := string(rh)
		switch {
		case r == l:
			out = append(out, r)
		case wildcardMatches(l, r):
			out = append(out, r)
		case wildcardMatches(r, l):
			out = append(out, l)
		}
	}
	return out
}

// wildcardMatches reports whether the wildcard pattern ("*.example.com")
// covers host (which may itself be a narrower wildcard): one or more
// labels in place of the "*".
func wildcardMatches(pattern, host string) bool {
	suffix, ok := strings.CutPrefix(pattern, "*")
	if !ok {
		return false
	}
	h := strings.TrimPrefix(host, "*")
	return strings.HasSuffix(h, suffix) && len(h) > len(suffix)
}

// lookupService finds the service a reference names: a Kubernetes Service
// (name.namespace.svc.<domain>, or a ServiceEntry of that name in local
// mode), a ServiceEntry by name, or an Istio Hostname.
func (t *translator) lookupService(group, kind, ns, name string) *registry.Service {
	switch {
	case group == "" && kind == "Service":
		host := name + "." + ns + ".svc." + t.domain
		for _, s := range t.services {
			if s.Hostname == host {
				return s
			}
		}
		for _, s := range t.services {
			if s.Namespace == ns && s.Name == name {
				return s
			}
		}
	case group == config.GroupNetworking && kind == "ServiceEntry":
		for _, s := range t.services {
			if s.Namespace == ns && s.Name == name {
				return s
			}
		}
	case group == config.GroupNetworking && kind == "Hostname":
		for _, s := range t.services {
			if s.Hostname == name {
				return s
			}
		}
	}
	return nil
}

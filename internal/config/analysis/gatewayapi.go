package analysis

import (
	"fmt"
	"reflect"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/gatewayapi"
	bregistry "github.com/bowline-mesh/bowline/internal/registry"
)

// gatewayAPIStatusAnalyzer computes the Gateway API status conditions the
// controller would set (internal/gatewayapi) from the files alone and
// reports each condition that is False (BWL0002): a route no listener
// accepts, a backend that does not exist, a listener that is not served.
type gatewayAPIStatusAnalyzer struct{}

var _ Analyzer = gatewayAPIStatusAnalyzer{}

func (gatewayAPIStatusAnalyzer) Name() string { return "gatewayapi.StatusAnalyzer" }
func (gatewayAPIStatusAnalyzer) Description() string {
	return "Computes the Gateway API status conditions (Accepted, Programmed, ResolvedRefs) and reports those that are False"
}

func (gatewayAPIStatusAnalyzer) Analyze(c *Context) {
	var objs []*config.Object
	for _, k := range []string{config.KindGatewayClass, config.KindGateway, config.KindHTTPRoute, config.KindGRPCRoute, config.KindReferenceGrant} {
		objs = append(objs, c.Objects(config.GroupGatewayAPI+"/"+k)...)
	}
	if len(objs) == 0 {
		return
	}
	out := gatewayapi.Translate(objs, c.registry.asServices(), gatewayapi.Options{Domain: c.opts.domain()})
	for _, st := range out.Status {
		obj := c.Find(config.GroupGatewayAPI+"/"+st.Kind, st.Namespace, st.Name)
		if obj == nil {
			continue
		}
		report := func(path, where string, cd metav1.Condition) {
			if cd.Status != metav1.ConditionFalse {
				return
			}
			c.Report(GatewayAPIConditionFalse, obj, path, st.Kind, obj.Meta.Namespace+"/"+obj.Meta.Name, where, cd.Type, cd.Reason, cd.Message)
		}
		for _, cd := range st.Conditions {
			report("spec", "", cd)
		}
		for _, l := range st.Listeners {
			for _, cd := range l.Conditions {
				report(listenerPath(obj, l.Name), " listener "+string(l.Name), cd)
			}
		}
		for _, p := range st.Parents {
			for _, cd := range p.Conditions {
				report(parentRefPath(obj, p.ParentRef), " parentRef "+parentName(p.ParentRef), cd)
			}
		}
	}
}

// parentName names a parentRef: "web", "web/http", "reviews:9080".
func parentName(r gwv1.ParentReference) string {
	out := string(r.Name)
	if r.SectionName != nil {
		out += "/" + string(*r.SectionName)
	}
	if r.Port != nil {
		out += fmt.Sprintf(":%d", *r.Port)
	}
	return out
}

func listenerPath(obj *config.Object, name gwv1.SectionName) string {
	if spec, ok := obj.Spec.(*gwv1.GatewaySpec); ok {
		for i, l := range spec.Listeners {
			if l.Name == name {
				return fmt.Sprintf("spec.listeners[%d]", i)
			}
		}
	}
	return "spec.listeners"
}

func parentRefPath(obj *config.Object, ref gwv1.ParentReference) string {
	var refs []gwv1.ParentReference
	switch spec := obj.Spec.(type) {
	case *gwv1.HTTPRouteSpec:
		refs = spec.ParentRefs
	case *gwv1.GRPCRouteSpec:
		refs = spec.ParentRefs
	}
	for i, r := range refs {
		if reflect.DeepEqual(r, ref) {
			return fmt.Sprintf("spec.parentRefs[%d]", i)
		}
	}
	return "spec.parentRefs"
}

// asServices gives the files' services in the registry's form, for
// gatewayapi.Translate: host, namespace, the name (the host's first label
// for a Kubernetes-style host) and the ports when the files declare them.
func (r *registry) asServices() []*bregistry.Service {
	var out []*bregistry.Service
	for _, s := range r.services {
		name, _, _ := strings.Cut(s.host, ".")
		svc := &bregistry.Service{Hostname: s.host, Namespace: s.namespace, Name: name}
		for _, p := range s.ports {
			svc.Ports = append(svc.Ports, bregistry.Port{Number: p})
		}
		out = append(out, svc)
	}
	return out
}

package model

import (
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/gatewayapi"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// labelGatewayClassName is the label Istio gives the pods of a Gateway API
// gateway naming its class.
const labelGatewayClassName = "gateway.networking.k8s.io/gateway-class-name"

// targetRefsAttach is Istio's targetRefs attachment of a policy in
// namespace ns to proxy p (its WorkloadPolicyMatcher), for the proxies
// Bowline runs:
//   - a Gateway of gateway.networking.k8s.io named N (in ns): the router
//     pods of that Gateway, labelled gateway.networking.k8s.io/gateway-name=N
//     in ns, and the router serving the Istio Gateways generated from it (the
//     one ingress gateway serves every Gateway of class istio);
//   - a GatewayClass N (the policy in the root namespace): routers labelled
//     gateway-class-name=N, and the router serving a Gateway of class N;
//   - a Service or ServiceEntry: waypoints only (ambient mode), which
//     Bowline does not run, so no proxy.
//
// Sidecars are never attached by targetRefs.
func (s *Snapshot) targetRefsAttach(p *Proxy, ns string, refs []*typev1beta1.PolicyTargetReference) bool {
	if p.Type != Router {
		return false
	}
	for _, r := range refs {
		if r.GetGroup() != gatewayAPIGroup {
			continue
		}
		switch r.GetKind() {
		case "Gateway":
			if p.Namespace == ns && p.Labels[labelGatewayName] == r.GetName() || s.servesGatewayAPI(p, ns, r.GetName()) {
				return true
			}
		case "GatewayClass":
			if ns != s.rootNamespace {
				continue
			}
			if p.Labels[labelGatewayClassName] == r.GetName() {
				return true
			}
			for _, o := range s.objects {
				if spec, ok := o.Spec.(*gwv1.GatewaySpec); ok && o.GVK.Kind == config.KindGateway &&
					string(spec.GatewayClassName) == r.GetName() && s.servesGatewayAPI(p, o.Meta.Namespace, o.Meta.Name) {
					return true
				}
			}
		}
	}
	return false
}

// servesGatewayAPI reports whether router p serves an Istio Gateway
// generated from the Gateway API Gateway ns/name.
func (s *Snapshot) servesGatewayAPI(p *Proxy, ns, name string) bool {
	for _, gw := range s.gateways {
		if gw.Namespace == ns && gatewayapi.GeneratedFrom(gw.Name, name) && registry.LabelsMatch(gw.Selector, p.Labels) {
			return true
		}
	}
	return false
}

// policyTargets are a policy's targetRefs, the deprecated singular
// targetRef included.
func policyTargets(ref *typev1beta1.PolicyTargetReference, refs []*typev1beta1.PolicyTargetReference) []*typev1beta1.PolicyTargetReference {
	if ref != nil {
		return append([]*typev1beta1.PolicyTargetReference{ref}, refs...)
	}
	return refs
}

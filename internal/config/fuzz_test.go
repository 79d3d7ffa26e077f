package config

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// FuzzParse feeds arbitrary bytes to the loader: it must never panic, and
// every object it returns must have a name, a namespace and a spec.
func FuzzParse(f *testing.F) {
	seeds := []string{
		reviewsVS,
		vsWithWeight("50"),
		"apiVersion: v1\nkind: List\nitems:\n- apiVersion: security.istio.io/v1\n  kind: AuthorizationPolicy\n  metadata: {name: a}\n  spec: {action: DENY, rules: [{to: [{operation: {paths: [/admin*]}}]}]}\n",
		"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: e}\nspec: {hosts: [a.com], ports: [{number: 443, name: https, protocol: TLS}], resolution: DNS}\n",
		"{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"Gateway\",\"metadata\":{\"name\":\"g\"},\"spec\":{\"selector\":{\"istio\":\"ingressgateway\"}}}",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: c, namespace: istio-system}\ntype: kubernetes.io/tls\ndata: {tls.crt: Y2VydA==, tls.key: a2V5}\nstringData: {ca.crt: x}\n",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: c}\ndata: {cert: '%%', key: [1]}\n",
		"a: &x [*x]\n",
		"---\n---\n- 1\n",
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  http:\n  - timeout: 1.5s\n    retries: {attempts: 3, perTryTimeout: 2s}\n",
		"apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: istio}\nspec: {controllerName: istio.io/gateway-controller}\n",
		"apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {gatewayClassName: istio, listeners: [{name: http, port: 80, protocol: HTTP}]}\n",
		"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{name: g}]\n  rules: [{matches: [{path: {type: PathPrefix, value: /a}}], backendRefs: [{name: s, port: 80, weight: 2}]}]\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res := Parse("fuzz.yaml", data, ParseOptions{})
		for _, o := range res.Objects {
			s, _, _ := LookupSchema(o.GVK.Group, o.GVK.Version, o.GVK.Kind)
			if o.Meta.Name == "" || (o.Meta.Namespace == "") != s.ClusterScoped || o.Spec == nil {
				t.Fatalf("incomplete object %+v", o)
			}
		}
		for _, p := range res.Problems {
			if p.Message == "" {
				t.Fatalf("problem without message: %+v", p)
			}
		}
	})
}

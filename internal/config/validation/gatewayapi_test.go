package validation

import "testing"

func gatewayAPIDoc(kind, name, spec string) string {
	return "apiVersion: gateway.networking.k8s.io/v1\nkind: " + kind + "\nmetadata:\n  name: " + name + "\nspec:\n" + spec
}

var gatewayAPICases = []networkingCase{
	{
		name: "valid gateway and route",
		doc: gatewayAPIDoc("HTTPRoute", "r", `  parentRefs: [{name: web, sectionName: http}]
  hostnames: [echo.example.com, "*.example.org"]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}, method: GET, headers: [{name: x-v, value: "2"}], queryParams: [{name: q, type: RegularExpression, value: "^a+$"}]}]
    filters:
    - {type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}}
    backendRefs: [{name: a, port: 8080, weight: 90}, {name: b, port: 8080, weight: 10}]
    timeouts: {request: 10s, backendRequest: 2s}
`),
	},
	{
		name: "listeners",
		doc: gatewayAPIDoc("Gateway", "gw", `  gatewayClassName: istio
  listeners:
  - {name: http, port: 80, protocol: HTTP, tls: {mode: Terminate}}
  - {name: http, port: 80, protocol: HTTP}
  - {name: tcp, port: 0, protocol: TCP, hostname: a.example.com}
  - {name: https, port: 443, protocol: HTTPS, tls: {mode: Passthrough}}
  - {name: sel, port: 81, protocol: HTTP, hostname: "Bad_Host", allowedRoutes: {namespaces: {from: Selector}}}
`),
		want: []string{
			"f.yaml:8: Gateway default/gw: spec.listeners[0].tls: tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']",
			`f.yaml:9: Gateway default/gw: spec.listeners[1].name: Listener name must be unique within the Gateway ("http" is used twice)`,
			"f.yaml:9: Gateway default/gw: spec.listeners[1]: Combination of port, protocol and hostname must be unique for each listener",
			"f.yaml:10: Gateway default/gw: spec.listeners[2].port: must be between 1 and 65535",
			"f.yaml:10: Gateway default/gw: spec.listeners[2].hostname: hostname must not be specified for protocols ['TCP', 'UDP']",
			"f.yaml:11: Gateway default/gw: spec.listeners[3].tls.mode: tls mode must be Terminate for protocol HTTPS",
			`f.yaml:12: Gateway default/gw: spec.listeners[4].hostname: "Bad_Host" is not a valid hostname: lowercase DNS name, optionally with a leading "*." (no IP addresses)`,
			"f.yaml:12: Gateway default/gw: spec.listeners[4].allowedRoutes.namespaces.selector: required when from is Selector",
		},
	},
	{
		name: "route rules",
		doc: gatewayAPIDoc("HTTPRoute", "r", `  parentRefs: [{name: web}, {name: web}]
  rules:
  - matches:
    - path: {type: PathPrefix, value: "foo//bar"}
    - path: {type: RegularExpression, value: "(("}
    filters:
    - type: RequestRedirect
      urlRewrite: {hostname: x.example.com}
    - type: URLRewrite
      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /x}}
    backendRefs: [{name: svc}, {name: b, port: 80, weight: -1}]
    timeouts: {request: 1s, backendRequest: 2s}
  - timeouts: {request: 1.5s}
`),
		want: []string{
			"f.yaml:6: HTTPRoute default/r: spec.parentRefs[1]: sectionName or port must be specified when parentRefs includes 2 or more references to the same parent",
			"f.yaml:6: HTTPRoute default/r: spec.parentRefs[1]: sectionName or port must be unique when parentRefs includes 2 or more references to the same parent",
			"f.yaml:9: HTTPRoute default/r: spec.rules[0].matches[0].path.value: value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']",
			"f.yaml:10: HTTPRoute default/r: spec.rules[0].matches[1].path.value: invalid regular expression: error parsing regexp: missing closing ): `((`",
			"f.yaml:12: HTTPRoute default/r: spec.rules[0].filters[0].requestRedirect: filter.requestRedirect must be specified for RequestRedirect filter.type",
			"f.yaml:13: HTTPRoute default/r: spec.rules[0].filters[0].urlRewrite: filter.urlRewrite must be nil if the filter.type is not URLRewrite",
			"f.yaml:15: HTTPRoute default/r: spec.rules[0].filters[1].urlRewrite.path: When using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified",
			"f.yaml:11: HTTPRoute default/r: spec.rules[0].filters: May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both",
			"f.yaml:8: HTTPRoute default/r: spec.rules[0]: RequestRedirect filter must not be used together with backendRefs",
			"f.yaml:16: HTTPRoute default/r: spec.rules[0].backendRefs[0].port: Must have port for Service reference",
			"f.yaml:16: HTTPRoute default/r: spec.rules[0].backendRefs[1].weight: must be between 0 and 1000000",
			"f.yaml:17: HTTPRoute default/r: spec.rules[0].timeouts.backendRequest: backendRequest timeout cannot be longer than request timeout",
			`f.yaml:18: HTTPRoute default/r: spec.rules[1].timeouts.request: "1.5s" is not a Gateway API duration (GEP-2257: up to 4 parts of 1-5 digits with h, m, s or ms, like "10s" or "1m30s")`,
		},
	},
	{
		name: "grpc method match",
		doc: gatewayAPIDoc("GRPCRoute", "g", `  parentRefs: [{name: web}]
  rules:
  - matches: [{method: {}}, {method: {service: "bad service", method: Echo}}]
    backendRefs: [{name: grpc, port: 9000}]
`),
		want: []string{
			"f.yaml:8: GRPCRoute default/g: spec.rules[0].matches[0].method: One or both of 'service' or 'method' must be specified",
			`f.yaml:8: GRPCRoute default/g: spec.rules[0].matches[1].method.service: service must only contain valid characters (matching ^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$)`,
		},
	},
	{
		name: "gateway class controller",
		doc:  "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: istio}\nspec: {controllerName: istio}\n",
		want: []string{`f.yaml:4: GatewayClass istio: spec.controllerName: "istio" must be a domain-prefixed path such as istio.io/gateway-controller`},
	},
}

func TestGatewayAPI(t *testing.T) { runNetworkingCases(t, gatewayAPICases) }

package analysis

import "testing"

func TestGatewayAPIStatus(t *testing.T) {
	const gw = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web}
spec:
  gatewayClassName: istio
  listeners:
  - {name: http, port: 80, protocol: HTTP, hostname: "*.example.com"}
  - {name: udp, port: 9000, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  ports: [{name: http, port: 9080}]
---
`
	runCases(t, []testCase{
		{name: "attached route, Kubernetes Service backend", yaml: gw + `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: web, sectionName: http}]
  hostnames: [shop.example.com]
  rules: [{backendRefs: [{name: reviews, port: 9080}]}]
`, want: []string{
			"Warning [BWL0002] (Gateway default/web test.yaml:8) Gateway default/web listener udp: Accepted is False (UnsupportedProtocol): protocol UDP is not supported yet",
			"Warning [BWL0002] (Gateway default/web test.yaml:8) Gateway default/web listener udp: Programmed is False (Invalid): the listener is not accepted",
		}},
		{name: "unattached route and missing backend", yaml: gw + `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: web, sectionName: udp}, {name: web, sectionName: http}]
  hostnames: [shop.example.org]
  rules: [{backendRefs: [{name: nope, port: 9080}]}]
`, want: []string{
			"Warning [BWL0002] (Gateway default/web test.yaml:8) Gateway default/web listener udp: Accepted is False (UnsupportedProtocol): protocol UDP is not supported yet",
			"Warning [BWL0002] (Gateway default/web test.yaml:8) Gateway default/web listener udp: Programmed is False (Invalid): the listener is not accepted",
			"Warning [BWL0002] (HTTPRoute default/r test.yaml:20) HTTPRoute default/r parentRef web/http: Accepted is False (NoMatchingListenerHostname): no hostname of the route matches a listener hostname",
			"Warning [BWL0002] (HTTPRoute default/r test.yaml:20) HTTPRoute default/r parentRef web/http: ResolvedRefs is False (BackendNotFound): backend Service default/nope not found",
			"Warning [BWL0002] (HTTPRoute default/r test.yaml:20) HTTPRoute default/r parentRef web/udp: Accepted is False (NotAllowedByListeners): no listener allows routes of this kind from namespace default",
			"Warning [BWL0002] (HTTPRoute default/r test.yaml:20) HTTPRoute default/r parentRef web/udp: ResolvedRefs is False (BackendNotFound): backend Service default/nope not found",
		}},
	})
}

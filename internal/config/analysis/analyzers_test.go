package analysis

import "testing"

func TestDestinationHosts(t *testing.T) {
	runCases(t, []testCase{
		{name: "known hosts", yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews.default.svc.cluster.local
    mirror:
      host: productpage
  - route:
    - destination:
        host: ratings
        port:
          number: 9090
`},
		{name: "unknown host, mirror and port", yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: bogus
    mirror:
      host: bogus-mirror
  - route:
    - destination:
        host: reviews
        port:
          number: 9999
  - route:
    - destination:
        host: ratings
`, want: []string{
			`Error [IST0101] (VirtualService default/reviews test.yaml:11) Referenced host not found: "bogus"`,
			`Error [IST0101] (VirtualService default/reviews test.yaml:13) Referenced mirror host not found: "bogus-mirror"`,
			`Error [IST0101] (VirtualService default/reviews test.yaml:18) Referenced host:port not found: "reviews:9999"`,
			`Error [IST0112] (VirtualService default/reviews test.yaml:21) This VirtualService routes to a service "ratings" that exposes multiple ports [9080 9090]. Specifying a port in the destination is required to disambiguate.`,
		}},
		{name: "wildcard service entry and kubernetes service", yaml: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: external
spec:
  hosts:
  - "*.example.com"
  ports:
  - number: 443
    name: https
    protocol: HTTPS
---
apiVersion: v1
kind: Service
metadata:
  name: details
  namespace: other
spec:
  ports:
  - port: 9080
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: routes
spec:
  hosts:
  - api.example.com
  http:
  - route:
    - destination:
        host: api.example.com
  - route:
    - destination:
        host: details.other.svc.cluster.local
  - route:
    - destination:
        host: details
`, want: []string{
			`Error [IST0101] (VirtualService default/routes test.yaml:38) Referenced host not found: "details"`,
		}},
		{name: "exportTo hides a service entry", yaml: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: private
  namespace: team
spec:
  hosts:
  - private.internal
  exportTo:
  - "."
  ports:
  - number: 80
    name: http
    protocol: HTTP
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: private
spec:
  hosts:
  - private.internal
  http:
  - route:
    - destination:
        host: private.internal
`, want: []string{
			`Error [IST0101] (VirtualService default/private test.yaml:26) Referenced host not found: "private.internal"`,
		}},
	}, destinationHostAnalyzer{})
}

func TestDestinationRuleSubsets(t *testing.T) {
	runCases(t, []testCase{
		{name: "defined subset", yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews.default.svc.cluster.local
        subset: v1
`},
		{name: "missing subsets", yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 50
    - destination:
        host: reviews
        subset: v4
      weight: 50
    mirror:
      host: ratings
      subset: v2
`, want: []string{
			`Error [IST0101] (VirtualService default/reviews test.yaml:16) Referenced host+subset in destinationrule not found: "reviews+v4"`,
			`Error [IST0101] (VirtualService default/reviews test.yaml:20) Referenced mirror+subset in destinationrule not found: "ratings+v2"`,
		}},
		{name: "subset of a rule in another namespace", yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: other
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
`, want: []string{
			`Error [IST0101] (VirtualService other/reviews test.yaml:13) Referenced host+subset in destinationrule not found: "reviews+v1"`,
		}},
	}, destinationRuleSubsetAnalyzer{})
}

func TestGateways(t *testing.T) {
	const gw = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: bookinfo-gateway
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - "bookinfo.example.com"
    - "other/*.example.org"
---
`
	runCases(t, []testCase{
		{name: "gateway serves the host", yaml: gw + `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bookinfo
spec:
  hosts:
  - bookinfo.example.com
  gateways:
  - bookinfo-gateway
  - mesh
  http:
  - route:
    - destination:
        host: productpage
`},
		{name: "missing gateway", yaml: gw + `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bookinfo
spec:
  hosts:
  - bookinfo.example.com
  gateways:
  - default/bookinfo-gw
  http:
  - route:
    - destination:
        host: productpage
`, want: []string{
			`Error [IST0101] (VirtualService default/bookinfo test.yaml:25) Referenced gateway not found: "default/bookinfo-gw"`,
			`Warning [IST0132] (VirtualService default/bookinfo test.yaml:25) one or more host [bookinfo.example.com] defined in VirtualService default/bookinfo not found in Gateway default/bookinfo-gw.`,
		}},
		{name: "host not in gateway or other namespace only", yaml: gw + `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: shop
spec:
  hosts:
  - shop.example.org
  - shop.example.net
  gateways:
  - bookinfo-gateway
  http:
  - route:
    - destination:
        host: productpage
`, want: []string{
			`Warning [IST0132] (VirtualService default/shop test.yaml:26) one or more host [shop.example.org shop.example.net] defined in VirtualService default/shop not found in Gateway default/bookinfo-gateway.`,
		}},
	}, gatewayReferenceAnalyzer{})
}

func TestConflictingMeshGatewayHosts(t *testing.T) {
	runCases(t, []testCase{
		{name: "one per host", yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-gw
spec:
  hosts:
  - reviews
  gateways:
  - some-gateway
  http:
  - route:
    - destination:
        host: reviews
`},
		{name: "same host twice", yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-fqdn
spec:
  hosts:
  - reviews.default.svc.cluster.local
  gateways:
  - mesh
  http:
  - route:
    - destination:
        host: reviews
`, want: []string{
			`Error [IST0109] (VirtualService default/reviews test.yaml:4) The VirtualServices default/reviews,default/reviews-fqdn associated with mesh gateway define the same host */reviews.default.svc.cluster.local which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource.`,
			`Error [IST0109] (VirtualService default/reviews-fqdn test.yaml:16) The VirtualServices default/reviews,default/reviews-fqdn associated with mesh gateway define the same host */reviews.default.svc.cluster.local which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource.`,
		}},
	}, conflictingMeshGatewayHostsAnalyzer{})
}

func TestUnreachableRules(t *testing.T) {
	runCases(t, []testCase{
		{name: "ordered rules", yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination:
        host: reviews
  - match:
    - uri:
        prefix: /api
    route:
    - destination:
        host: reviews
  - route:
    - destination:
        host: reviews
`},
		{name: "rules after catch-all and duplicates", yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - name: first
    match:
    - uri:
        exact: /a
    route:
    - destination:
        host: reviews
  - name: again
    match:
    - name: dup
      uri:
        exact: /a
    route:
    - destination:
        host: reviews
  - route:
    - destination:
        host: reviews
  - match:
    - uri:
        exact: /b
    route:
    - destination:
        host: reviews
  - route:
    - destination:
        host: reviews
`, want: []string{
			`Warning [IST0130] (VirtualService default/reviews test.yaml:16) VirtualService rule "again" not used (all matches used by prior rules).`,
			`Info [IST0131] (VirtualService default/reviews test.yaml:18) VirtualService rule "again" match "dup" is not used (duplicate/overlapping match in rule "first").`,
			`Warning [IST0130] (VirtualService default/reviews test.yaml:28) VirtualService rule #3 not used (route without matches defined before).`,
			`Warning [IST0130] (VirtualService default/reviews test.yaml:33) VirtualService rule #4 not used (only the last rule can have no matches).`,
		}},
	}, unreachableRulesAnalyzer{})
}

func TestPrefixOverlap(t *testing.T) {
	runCases(t, []testCase{
		{name: "shorter prefix first", yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - match:
    - uri:
        prefix: /api
    route:
    - destination:
        host: reviews
  - match:
    - uri:
        prefix: /api/v2
    route:
    - destination:
        host: reviews
`, want: []string{
			`Info [IST0131] (VirtualService default/reviews test.yaml:16) VirtualService rule #1 match #0 of prefix /api/v2 is not used (duplicate/overlapping match in rule #0 of prefix /api on #0).`,
		}},
	}, unreachableRulesAnalyzer{})
}

func TestConflictingGateways(t *testing.T) {
	const gw = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: a
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - "*.example.com"
---
`
	runCases(t, []testCase{
		{name: "different hosts or selector", yaml: gw + `apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: b
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - "shop.example.org"
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: c
spec:
  selector:
    istio: egressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - "*.example.com"
`},
		{name: "overlapping hosts", yaml: gw + `apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: b
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - "shop.example.com"
`, want: []string{
			`Error [IST0145] (Gateway default/a test.yaml:10) Conflict with gateways default/b (workload selector istio=ingressgateway, port 80, hosts *.example.com).`,
			`Error [IST0145] (Gateway default/b test.yaml:25) Conflict with gateways default/a (workload selector istio=ingressgateway, port 80, hosts shop.example.com).`,
		}},
	}, conflictingGatewayAnalyzer{})
}

func TestCACertificates(t *testing.T) {
	runCases(t, []testCase{
		{name: "verified or istio mtls", yaml: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: external
spec:
  host: api.example.com
  trafficPolicy:
    tls:
      mode: SIMPLE
      caCertificates: /etc/certs/ca.pem
    portLevelSettings:
    - port:
        number: 8443
      tls:
        mode: SIMPLE
        credentialName: api-ca
    - port:
        number: 9443
      tls:
        mode: SIMPLE
        insecureSkipVerify: true
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: mesh
spec:
  host: reviews
  trafficPolicy:
    tls:
      mode: ISTIO_MUTUAL
`},
		{name: "unverified", yaml: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: external
spec:
  host: api.example.com
  trafficPolicy:
    tls:
      mode: SIMPLE
    portLevelSettings:
    - port:
        number: 8443
      tls:
        mode: MUTUAL
        clientCertificate: /etc/certs/cert.pem
        privateKey: /etc/certs/key.pem
`, want: []string{
			`Warning [IST0128] (DestinationRule default/external test.yaml:9) DestinationRule default/external in namespace default has TLS mode set to SIMPLE but no caCertificates are set to validate server identity for host: api.example.com`,
			`Warning [IST0129] (DestinationRule default/external test.yaml:14) DestinationRule default/external in namespace default has TLS mode set to MUTUAL but no caCertificates are set to validate server identity for host: api.example.com at port number:8443`,
		}},
	}, destinationRuleCACertAnalyzer{})
}

func TestMTLSConflict(t *testing.T) {
	const strict = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: STRICT
---
`
	runCases(t, []testCase{
		{name: "istio mutual under strict, disable under namespace permissive", yaml: strict + `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews-mtls
spec:
  host: reviews
  trafficPolicy:
    tls:
      mode: ISTIO_MUTUAL
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: legacy
spec:
  mtls:
    mode: PERMISSIVE
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: old
  namespace: legacy
spec:
  host: old
  trafficPolicy:
    tls:
      mode: DISABLE
`},
		{name: "disable under strict", yaml: strict + `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  trafficPolicy:
    tls:
      mode: DISABLE
`, want: []string{
			`Error [IST0113] (PeerAuthentication istio-system/default test.yaml:8) A DestinationRule and Policy are in conflict with regards to mTLS for host reviews.default.svc.cluster.local. The DestinationRule "default/reviews" specifies that mTLS must be false but the Policy object "istio-system/default" specifies STRICT.`,
			`Error [IST0113] (DestinationRule default/reviews test.yaml:18) A DestinationRule and Policy are in conflict with regards to mTLS for host reviews.default.svc.cluster.local. The DestinationRule "default/reviews" specifies that mTLS must be false but the Policy object "istio-system/default" specifies STRICT.`,
		}},
		{name: "istio mutual to disabled namespace", yaml: `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: off
  namespace: legacy
spec:
  mtls:
    mode: DISABLE
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: old
spec:
  host: old.legacy.svc.cluster.local
  trafficPolicy:
    portLevelSettings:
    - port:
        number: 80
      tls:
        mode: ISTIO_MUTUAL
`, want: []string{
			`Error [IST0113] (PeerAuthentication legacy/off test.yaml:8) A DestinationRule and Policy are in conflict with regards to mTLS for host old.legacy.svc.cluster.local. The DestinationRule "default/old" specifies that mTLS must be true but the Policy object "legacy/off" specifies DISABLE.`,
			`Error [IST0113] (DestinationRule default/old test.yaml:21) A DestinationRule and Policy are in conflict with regards to mTLS for host old.legacy.svc.cluster.local. The DestinationRule "default/old" specifies that mTLS must be true but the Policy object "legacy/off" specifies DISABLE.`,
		}},
	}, mtlsAnalyzer{})
}

func TestDefaultSelectors(t *testing.T) {
	runCases(t, []testCase{
		{name: "one default sidecar per namespace", yaml: `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: default
spec:
  egress:
  - hosts:
    - "./*"
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: reviews
spec:
  workloadSelector:
    labels:
      app: reviews
  egress:
  - hosts:
    - "./*"
`},
		{name: "two default sidecars", yaml: `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: a
spec:
  egress:
  - hosts:
    - "./*"
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: b
spec:
  egress:
  - hosts:
    - "./*"
`, want: []string{
			`Error [IST0111] (Sidecar default/a test.yaml:4) The Sidecars [a b] in namespace "default" have no workload selector, which can lead to undefined behavior.`,
			`Error [IST0111] (Sidecar default/b test.yaml:13) The Sidecars [a b] in namespace "default" have no workload selector, which can lead to undefined behavior.`,
		}},
	}, sidecarDefaultSelectorAnalyzer{}, telemetryDefaultSelectorAnalyzer{})
}

func TestServiceEntryAddresses(t *testing.T) {
	runCases(t, []testCase{
		{name: "tcp without addresses", yaml: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: db
spec:
  hosts:
  - db.example.com
  resolution: DNS
  ports:
  - number: 5432
    name: tcp-postgres
    protocol: TCP
  - number: 80
    name: http
    protocol: HTTP
`, want: []string{
			`Warning [IST0134] (ServiceEntry default/db test.yaml:11) ServiceEntry addresses are required for this protocol.`,
		}},
	}, serviceEntryAddressesAnalyzer{})
}

func TestSchemaProblems(t *testing.T) {
	runCases(t, []testCase{
		{name: "unknown field and bad yaml", yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  htp:
  - route: []
`, want: []string{
			`Error [IST0106] (VirtualService default/reviews test.yaml:8) Schema validation error: spec.htp: unknown field "htp" in VirtualService`,
		}},
	}, schemaAnalyzer{})
}

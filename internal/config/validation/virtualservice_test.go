package validation

import "testing"

// networkingDoc returns a networking.istio.io/v1 document of kind named name
// whose spec (indented by two spaces) starts on line 6.
func networkingDoc(kind, name, spec string) string {
	return "apiVersion: networking.istio.io/v1\nkind: " + kind + "\nmetadata:\n  name: " + name + "\nspec:\n" + spec
}

var virtualServiceCases = []networkingCase{
	{
		name: "negative weight",
		file: "reviews.yaml",
		doc: networkingDoc("VirtualService", "reviews", `  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 120
    - destination:
        host: reviews
        subset: v3
      weight: -20
`),
		want: []string{"reviews.yaml:17: VirtualService default/reviews: spec.http[0].route[1].weight: weight -20 must not be negative"},
	},
	{
		name: "all weights zero",
		file: "reviews.yaml",
		doc: networkingDoc("VirtualService", "reviews", `  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 0
    - destination: {host: reviews, subset: v2}
`),
		want: []string{"reviews.yaml:8: VirtualService default/reviews: spec.http[0].route: total weight of the destinations is 0"},
	},
	{
		name: "delegate with gateways and tcp",
		doc: networkingDoc("VirtualService", "delegate", `  gateways: [bookinfo-gateway]
  http:
  - route:
    - destination: {host: reviews}
  tcp:
  - route:
    - destination: {host: reviews}
`),
		want: []string{
			"f.yaml:6: VirtualService default/delegate: spec.gateways: a delegate virtual service (one without hosts) must not specify gateways",
			"f.yaml:10: VirtualService default/delegate: spec.tcp: a delegate virtual service (one without hosts) must not have tcp routes",
		},
	},
	{
		name: "wildcard inside host",
		doc: networkingDoc("VirtualService", "r", `  hosts: ["foo.*.com", "-bad.example.com"]
  http:
  - route:
    - destination: {host: reviews}
`),
		want: []string{
			`f.yaml:6: VirtualService default/r: spec.hosts[0]: domain name "foo.*.com" is invalid: a wildcard is only allowed as the leading character`,
			`f.yaml:6: VirtualService default/r: spec.hosts[1]: domain name "-bad.example.com" is invalid: label "-bad" is not a DNS-1123 label`,
		},
	},
	{
		name: "star host bound to mesh",
		doc: networkingDoc("VirtualService", "r", `  hosts: ["*"]
  gateways: [mesh, istio-system/ingress]
  http:
  - route:
    - destination: {host: reviews}
`),
		want: []string{`f.yaml:6: VirtualService default/r: spec.hosts[0]: wildcard host "*" is not allowed for virtual services bound to the mesh`},
	},
	{
		name: "overlapping hosts",
		doc: networkingDoc("VirtualService", "r", `  hosts:
  - "*.example.com"
  - a.example.com
  http:
  - route:
    - destination: {host: a.example.com}
`),
		want: []string{`f.yaml:8: VirtualService default/r: spec.hosts[1]: duplicate host: "a.example.com" overlaps "*.example.com"`},
	},
	{
		name: "no routes",
		doc:  networkingDoc("VirtualService", "r", "  hosts: [reviews]\n"),
		want: []string{"f.yaml:5: VirtualService default/r: spec: at least one of http, tcp or tls routes is required"},
	},
	{
		name: "route without action",
		doc: networkingDoc("VirtualService", "r", `  hosts: [reviews]
  http:
  - match:
    - uri: {prefix: /api}
`),
		want: []string{"f.yaml:8: VirtualService default/r: spec.http[0]: one of route, redirect, directResponse or delegate is required"},
	},
	{
		name: "redirect and route",
		doc: networkingDoc("VirtualService", "r", `  hosts: [reviews]
  http:
  - redirect:
      uri: /v2
      redirectCode: 200
    route:
    - destination: {host: reviews}
`),
		want: []string{
			"f.yaml:8: VirtualService default/r: spec.http[0].redirect: route and redirect cannot both be set",
			"f.yaml:10: VirtualService default/r: spec.http[0].redirect.redirectCode: redirect code 200 must be between 300 and 399",
		},
	},
	{
		name: "direct response and route",
		doc: networkingDoc("VirtualService", "r", `  hosts: [reviews]
  http:
  - directResponse:
      status: 700
    route:
    - destination: {host: reviews}
`),
		want: []string{
			"f.yaml:8: VirtualService default/r: spec.http[0].directResponse: route and directResponse cannot both be set",
			"f.yaml:9: VirtualService default/r: spec.http[0].directResponse.status: http status 700 must be between 200 and 599",
		},
	},
	{
		name: "rewrite uri and regex",
		doc: networkingDoc("VirtualService", "r", `  hosts: [reviews]
  http:
  - rewrite:
      uri: /v2
      uriRegexRewrite:
        match: "^/v1/(.*"
        rewrite: /v2/\1
    route:
    - destination: {host: reviews}
`),
		want: []string{
			"f.yaml:10: VirtualService default/r: spec.http[0].rewrite.uriRegexRewrite: uri and uriRegexRewrite cannot both be set",
			"f.yaml:11: VirtualService default/r: spec.http[0].rewrite.uriRegexRewrite.match: invalid RE2 regex: missing closing ): `^/v1/(.*`",
		},
	},
	{
		name: "retries",
		doc: networkingDoc("VirtualService", "r", `  hosts: [reviews]
  http:
  - retries:
      attempts: 3
      perTryTimeout: 500us
      retryOn: 5xx,503,bogus
    timeout: 1500us
    route:
    - destination: {host: reviews}
`),
		want: []string{
			"f.yaml:10: VirtualService default/r: spec.http[0].retries.perTryTimeout: duration 500µs must be at least 1ms",
			`f.yaml:11: VirtualService default/r: spec.http[0].retries.retryOn: "bogus" is not a valid retryOn policy`,
			"f.yaml:12: VirtualService default/r: spec.http[0].timeout: duration 1.5ms must be a whole number of milliseconds",
		},
	},
	{
		name: "retry settings with zero attempts",
		doc: networkingDoc("VirtualService", "r", `  hosts: [reviews]
  http:
  - retries:
      attempts: 0
      retryOn: connect-failure
    route:
    - destination: {host: reviews}
`),
		want: []string{"f.yaml:9: VirtualService default/r: spec.http[0].retries.attempts: retry settings are given but attempts is 0 (retries disabled)"},
	},
	{
		name: "fault abort and delay values",
		file: "ratings.yaml",
		doc: networkingDoc("VirtualService", "ratings", `  hosts: [ratings]
  http:
  - fault:
      abort:
        httpStatus: 700
        percentage: {value: 150}
      delay:
        fixedDelay: 0s
        percentage: {value: 100}
    route:
    - destination: {host: ratings, subset: v1}
`),
		want: []string{
			"ratings.yaml:11: VirtualService default/ratings: spec.http[0].fault.abort.percentage.value: percentage 150 must be 0 or between 0.0001 and 100",
			"ratings.yaml:10: VirtualService default/ratings: spec.http[0].fault.abort.httpStatus: http status 700 must be between 200 and 599",
			"ratings.yaml:13: VirtualService default/ratings: spec.http[0].fault.delay.fixedDelay: duration 0s must be at least 1ms",
		},
	},
	{
		name: "empty fault and unknown grpc status",
		doc: networkingDoc("VirtualService", "r", `  hosts: [ratings]
  http:
  - fault: {}
    route:
    - destination: {host: ratings}
  - fault:
      abort:
        grpcStatus: NOPE
    route:
    - destination: {host: ratings}
`),
		want: []string{
			"f.yaml:8: VirtualService default/r: spec.http[0].fault: fault injection needs an abort, a delay or both",
			`f.yaml:13: VirtualService default/r: spec.http[1].fault.abort.grpcStatus: unknown gRPC status "NOPE" (use a name such as NOT_FOUND or UNAVAILABLE)`,
			"f.yaml:11: warning: VirtualService default/r: spec.http[1]: rule is never used: rule #0 before it has no match and takes all traffic",
		},
	},
	{
		name: "mirror percentage and wildcard mirror host",
		doc: networkingDoc("VirtualService", "r", `  hosts: [reviews]
  http:
  - mirror:
      host: "*"
    mirrorPercentage:
      value: 120
    route:
    - destination: {host: reviews}
`),
		want: []string{
			"f.yaml:11: VirtualService default/r: spec.http[0].mirrorPercentage.value: must be between 0 and 100, got 120",
			`f.yaml:9: VirtualService default/r: spec.http[0].mirror.host: destination host cannot be "*"`,
		},
	},
	{
		name: "header operations",
		doc: networkingDoc("VirtualService", "r", `  hosts: [reviews]
  http:
  - headers:
      request:
        set:
          ":path": /x
          x-ok: "50%"
      response:
        remove: [Host]
    route:
    - destination: {host: reviews}
`),
		want: []string{
			`f.yaml:11: VirtualService default/r: spec.http[0].headers.request.set[:path]: pseudo header ":path" cannot be edited`,
			`f.yaml:12: VirtualService default/r: spec.http[0].headers.request.set[x-ok]: header value "50%" has an unescaped % (write %% for a literal %)`,
			"f.yaml:14: VirtualService default/r: spec.http[0].headers.response.remove[0]: the Host header cannot be edited here (use rewrite.authority)",
		},
	},
	{
		name: "authority rewritten twice",
		doc: networkingDoc("VirtualService", "r", `  hosts: [reviews]
  http:
  - rewrite:
      authority: a.example.com
    headers:
      request:
        set:
          host: b.example.com
    route:
    - destination: {host: reviews}
`),
		want: []string{`f.yaml:13: VirtualService default/r: spec.http[0].headers.request.set[host]: authority is already rewritten to "a.example.com", cannot also set it to "b.example.com"`},
	},
	{
		name: "match regex header name and port",
		doc: networkingDoc("VirtualService", "r", `  hosts: [reviews]
  http:
  - match:
    - uri:
        regex: "[a-"
      headers:
        "bad header":
          exact: x
      method:
        prefix: ""
      port: 70000
      sourceNamespace: bad_ns
    route:
    - destination: {host: reviews}
`),
		want: []string{
			`f.yaml:12: VirtualService default/r: spec.http[0].match[0].headers[bad header]: invalid header name "bad header": only letters, digits, '-' and '_' are allowed`,
			"f.yaml:10: VirtualService default/r: spec.http[0].match[0].uri.regex: invalid RE2 regex: missing closing ]: `[a-`",
			"f.yaml:15: VirtualService default/r: spec.http[0].match[0].method.prefix: prefix match must not be empty",
			"f.yaml:16: VirtualService default/r: spec.http[0].match[0].port: port number 70000 must be between 1 and 65535",
			`f.yaml:17: VirtualService default/r: spec.http[0].match[0].sourceNamespace: invalid namespace "bad_ns"`,
		},
	},
	{
		name: "jwt claim routing on the mesh",
		doc: networkingDoc("VirtualService", "r", `  hosts: [reviews]
  http:
  - match:
    - headers:
        "@request.auth.claims.group":
          exact: admin
    route:
    - destination: {host: reviews}
`),
		want: []string{`f.yaml:10: VirtualService default/r: spec.http[0].match[0].headers[@request.auth.claims.group]: routing on JWT claim "@request.auth.claims.group" is only supported for virtual services bound to gateways (not mesh)`},
	},
	{
		name: "cors policy",
		doc: networkingDoc("VirtualService", "r", `  hosts: [reviews]
  http:
  - corsPolicy:
      allowOrigins:
      - exact: ""
      - regex: "*.example.com"
      allowMethods: [GET, FETCH]
      allowHeaders: ["x:y"]
      maxAge: 1500ms
    route:
    - destination: {host: reviews}
`),
		want: []string{
			"f.yaml:10: VirtualService default/r: spec.http[0].corsPolicy.allowOrigins[0]: origin match must not be empty",
			"f.yaml:11: VirtualService default/r: spec.http[0].corsPolicy.allowOrigins[1].regex: invalid RE2 regex: missing argument to repetition operator: `*`",
			`f.yaml:12: VirtualService default/r: spec.http[0].corsPolicy.allowMethods[1]: "FETCH" is not a supported HTTP method`,
			`f.yaml:13: VirtualService default/r: spec.http[0].corsPolicy.allowHeaders[0]: invalid header name "x:y": only letters, digits, '-' and '_' are allowed`,
			"f.yaml:14: VirtualService default/r: spec.http[0].corsPolicy.maxAge: must be a whole number of seconds",
		},
	},
	{
		name: "destination host, subset and port",
		doc: networkingDoc("VirtualService", "r", `  hosts: [reviews]
  http:
  - route:
    - destination:
        subset: V_1
        port: {number: 0}
`),
		want: []string{
			"f.yaml:9: VirtualService default/r: spec.http[0].route[0].destination.host: destination host is required",
			`f.yaml:10: VirtualService default/r: spec.http[0].route[0].destination.subset: invalid subset name "V_1": must be a DNS-1123 label`,
			"f.yaml:11: VirtualService default/r: spec.http[0].route[0].destination.port.number: port number 0 must be between 1 and 65535",
		},
	},
	{
		name: "gateway names",
		doc: networkingDoc("VirtualService", "r", `  hosts: [bookinfo.example.com]
  gateways: [bad_ns/gw, "/gw", bookinfo-gateway.istio-system]
  http:
  - route:
    - destination: {host: productpage}
`),
		want: []string{
			`f.yaml:7: VirtualService default/r: spec.gateways[0]: invalid namespace "bad_ns" in gateway "bad_ns/gw"`,
			`f.yaml:7: VirtualService default/r: spec.gateways[1]: namespace and name of gateway "/gw" must not be empty`,
			`f.yaml:7: warning: VirtualService default/r: spec.gateways[2]: legacy gateway name form "bookinfo-gateway.istio-system"; prefer namespace/name: "istio-system/bookinfo-gateway"`,
		},
	},
	{
		name: "tls route sni hosts",
		doc: networkingDoc("VirtualService", "r", `  hosts: ["*.example.com"]
  gateways: [istio-system/tls-gw]
  tls:
  - match:
    - sniHosts: [a.other.com]
      port: 443
    - port: 8443
    route:
    - destination: {host: a.example.com}
`),
		want: []string{
			`f.yaml:10: VirtualService default/r: spec.tls[0].match[0].sniHosts[0]: sni host "a.other.com" is not covered by any of the virtual service hosts [*.example.com]`,
			"f.yaml:12: VirtualService default/r: spec.tls[0].match[1].sniHosts: a tls match needs at least one sni host",
		},
	},
	{
		name: "tcp route without destinations",
		doc: networkingDoc("VirtualService", "r", `  hosts: [mysql.example.com]
  tcp:
  - match:
    - destinationSubnets: [10.0.0.0/33]
`),
		want: []string{
			`f.yaml:9: VirtualService default/r: spec.tcp[0].match[0].destinationSubnets[0]: "10.0.0.0/33" is not a valid CIDR block`,
			"f.yaml:8: VirtualService default/r: spec.tcp[0].route: a tcp route needs at least one destination",
		},
	},
	{
		name: "root route with delegate and route",
		doc: networkingDoc("VirtualService", "r", `  hosts: [reviews]
  http:
  - delegate: {name: reviews-delegate, namespace: team}
    route:
    - destination: {host: reviews}
`),
		want: []string{"f.yaml:9: VirtualService default/r: spec.http[0].route: a route with delegate must not specify route"},
	},
	{
		name: "duplicate match is never used",
		doc: networkingDoc("VirtualService", "r", `  hosts: [reviews]
  http:
  - name: jason
    match:
    - headers: {end-user: {exact: jason}}
    route:
    - destination: {host: reviews, subset: v2}
  - match:
    - name: again
      headers: {end-user: {exact: jason}}
    route:
    - destination: {host: reviews, subset: v3}
`),
		want: []string{
			`f.yaml:14: warning: VirtualService default/r: spec.http[1].match[0]: match is never used: the same match is in rule "jason"`,
			"f.yaml:13: warning: VirtualService default/r: spec.http[1]: rule is never used: all its matches are in earlier rules",
		},
	},
}

func TestVirtualService(t *testing.T) { runNetworkingCases(t, virtualServiceCases) }

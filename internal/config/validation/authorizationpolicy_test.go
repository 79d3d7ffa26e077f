package validation

import "testing"

// apDoc is an AuthorizationPolicy foo/httpbin whose spec body starts on line 7.
func apDoc(body string) string {
	return "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: httpbin\n  namespace: foo\nspec:\n" + body
}

func TestAuthorizationPolicyProblems(t *testing.T) {
	secRunCases(t, "authz.yaml", []secCase{
		{name: "custom without provider", doc: apDoc(`
  action: CUSTOM
  rules:
  - {}
`), want: []string{
			"authz.yaml:6: AuthorizationPolicy foo/httpbin: spec.provider: required when action is CUSTOM",
		}},
		{name: "custom with empty provider name", doc: apDoc(`
  action: CUSTOM
  provider: {}
  rules:
  - {}
`), want: []string{
			"authz.yaml:9: AuthorizationPolicy foo/httpbin: spec.provider.name: required when action is CUSTOM",
		}},
		{name: "provider with allow", doc: apDoc(`
  action: ALLOW
  provider:
    name: ext-authz
  rules:
  - {}
`), want: []string{
			"authz.yaml:9: AuthorizationPolicy foo/httpbin: spec.provider: only allowed with action CUSTOM, not ALLOW",
		}},
		{name: "deny without rules", doc: apDoc(`
  action: DENY
`), want: []string{
			"authz.yaml:6: AuthorizationPolicy foo/httpbin: spec.rules: a DENY policy without rules never applies; add an empty rule {} to apply it to every request",
		}},
		{name: "deny with explicit empty rules", doc: apDoc(`
  action: DENY
  rules: []
`), want: []string{
			"authz.yaml:9: warning: AuthorizationPolicy foo/httpbin: spec.rules: a DENY policy without rules never applies; add an empty rule {} to apply it to every request",
		}},
		{name: "custom without rules", doc: apDoc(`
  action: CUSTOM
  provider:
    name: ext-authz
`), want: []string{
			"authz.yaml:6: AuthorizationPolicy foo/httpbin: spec.rules: a CUSTOM policy without rules never applies; add an empty rule {} to apply it to every request",
		}},
		{name: "selector and targetRefs", doc: apDoc(`
  selector:
    matchLabels:
      app: httpbin
  targetRefs:
  - kind: Gateway
    group: gateway.networking.k8s.io
    name: waypoint
`), want: []string{
			"authz.yaml:11: AuthorizationPolicy foo/httpbin: spec.targetRefs: only one of selector, targetRef and targetRefs may be set",
		}},
		{name: "bad target references", doc: apDoc(`
  targetRefs:
  - kind: Deployment
    group: apps
    name: httpbin
  - kind: Service
    name: ""
    namespace: bar
`), want: []string{
			"authz.yaml:9: AuthorizationPolicy foo/httpbin: spec.targetRefs[0].kind: cannot target apps/Deployment; supported: Service, networking.istio.io/ServiceEntry, gateway.networking.k8s.io/Gateway, gateway.networking.k8s.io/GatewayClass",
			"authz.yaml:13: AuthorizationPolicy foo/httpbin: spec.targetRefs[1].name: required",
			"authz.yaml:14: AuthorizationPolicy foo/httpbin: spec.targetRefs[1].namespace: cross-namespace references are not supported; leave namespace empty",
		}},
		{name: "empty from list", doc: apDoc(`
  rules:
  - from: []
    to:
    - operation:
        methods: ["GET"]
`), want: []string{
			"authz.yaml:9: AuthorizationPolicy foo/httpbin: spec.rules[0].from: must not be empty; omit it to match any source",
		}},
		{name: "empty source and operation", doc: apDoc(`
  rules:
  - from:
    - source: {}
    to:
    - operation: {}
`), want: []string{
			"authz.yaml:10: AuthorizationPolicy foo/httpbin: spec.rules[0].from[0].source: must set at least one field; omit the source to match any source",
			"authz.yaml:12: AuthorizationPolicy foo/httpbin: spec.rules[0].to[0].operation: must set at least one field; omit the operation to match any operation",
		}},
		{name: "missing source", doc: apDoc(`
  rules:
  - from:
    - {}
`), want: []string{
			"authz.yaml:10: AuthorizationPolicy foo/httpbin: spec.rules[0].from[0].source: required",
		}},
		{name: "empty list entries", doc: apDoc(`
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/sleep", ""]
        namespaces: [""]
    to:
    - operation:
        hosts: [""]
`), want: []string{
			"authz.yaml:11: AuthorizationPolicy foo/httpbin: spec.rules[0].from[0].source.principals[1]: must not be empty",
			"authz.yaml:12: AuthorizationPolicy foo/httpbin: spec.rules[0].from[0].source.namespaces[0]: must not be empty",
			"authz.yaml:15: AuthorizationPolicy foo/httpbin: spec.rules[0].to[0].operation.hosts[0]: must not be empty",
		}},
		{name: "bad ip blocks", doc: apDoc(`
  rules:
  - from:
    - source:
        ipBlocks: ["10.0.0.300", "10.0.0.0/33"]
        notRemoteIpBlocks: ["example.com"]
`), want: []string{
			"authz.yaml:11: AuthorizationPolicy foo/httpbin: spec.rules[0].from[0].source.ipBlocks[0]: \"10.0.0.300\" is not an IP address or CIDR range",
			"authz.yaml:11: AuthorizationPolicy foo/httpbin: spec.rules[0].from[0].source.ipBlocks[1]: \"10.0.0.0/33\" is not a valid CIDR range",
			"authz.yaml:12: AuthorizationPolicy foo/httpbin: spec.rules[0].from[0].source.notRemoteIpBlocks[0]: \"example.com\" is not an IP address or CIDR range",
		}},
		{name: "bad ports", doc: apDoc(`
  rules:
  - to:
    - operation:
        ports: ["http", "70000", "0"]
        notPorts: ["-1"]
`), want: []string{
			"authz.yaml:11: AuthorizationPolicy foo/httpbin: spec.rules[0].to[0].operation.ports[0]: \"http\" is not a port number (0-65535)",
			"authz.yaml:11: AuthorizationPolicy foo/httpbin: spec.rules[0].to[0].operation.ports[1]: \"70000\" is not a port number (0-65535)",
			"authz.yaml:11: warning: AuthorizationPolicy foo/httpbin: spec.rules[0].to[0].operation.ports[2]: port 0 never matches a connection",
			"authz.yaml:12: AuthorizationPolicy foo/httpbin: spec.rules[0].to[0].operation.notPorts[0]: \"-1\" is not a port number (0-65535)",
		}},
		{name: "bad path templates", doc: apDoc(`
  rules:
  - to:
    - operation:
        paths: ["/{**}/foo/{*}", "/foo/{*}.txt", "/*/baz/{*}", "/foo/{bar}/{*}"]
`), want: []string{
			"authz.yaml:11: AuthorizationPolicy foo/httpbin: spec.rules[0].to[0].operation.paths[0]: invalid path template \"/{**}/foo/{*}\": {**} must be the last operator",
			"authz.yaml:11: AuthorizationPolicy foo/httpbin: spec.rules[0].to[0].operation.paths[1]: invalid path template \"/foo/{*}.txt\": '{' and '}' are only allowed as whole {*} or {**} segments",
			"authz.yaml:11: AuthorizationPolicy foo/httpbin: spec.rules[0].to[0].operation.paths[2]: invalid path template \"/*/baz/{*}\": segment \"*\" must be a non-empty literal without '*'",
			"authz.yaml:11: AuthorizationPolicy foo/httpbin: spec.rules[0].to[0].operation.paths[3]: invalid path template \"/foo/{bar}/{*}\": '{' and '}' are only allowed as whole {*} or {**} segments",
		}},
		{name: "path wildcards", doc: apDoc(`
  rules:
  - to:
    - operation:
        paths: ["/a/*/b", "*/api/*", "api/v1"]
        notPaths: ["/admin*"]
`), want: []string{
			"authz.yaml:11: warning: AuthorizationPolicy foo/httpbin: spec.rules[0].to[0].operation.paths[0]: \"/a/*/b\": '*' is a wildcard only as the first or last character (exact, prefix*, *suffix or *); others match a literal '*'",
			"authz.yaml:11: warning: AuthorizationPolicy foo/httpbin: spec.rules[0].to[0].operation.paths[1]: \"*/api/*\": '*' is a wildcard only as the first or last character (exact, prefix*, *suffix or *); others match a literal '*'",
			"authz.yaml:11: warning: AuthorizationPolicy foo/httpbin: spec.rules[0].to[0].operation.paths[2]: \"api/v1\" does not start with '/' and never matches a request path",
		}},
		{name: "lowercase method", doc: apDoc(`
  rules:
  - to:
    - operation:
        methods: ["get", "PURGE"]
`), want: []string{
			"authz.yaml:11: warning: AuthorizationPolicy foo/httpbin: spec.rules[0].to[0].operation.methods[0]: methods match case-sensitively; \"get\" never matches, use \"GET\"",
		}},
		{name: "unknown condition key", doc: apDoc(`
  rules:
  - when:
    - key: request.method
      values: ["GET"]
`), want: []string{
			"authz.yaml:10: AuthorizationPolicy foo/httpbin: spec.rules[0].when[0].key: unknown attribute \"request.method\"; supported: request.headers[...], source.ip, remote.ip, source.namespace, source.principal, source.serviceAccount, request.auth.principal, request.auth.audiences, request.auth.presenter, request.auth.claims[...], destination.ip, destination.port, connection.sni, experimental.envoy.filters.*",
		}},
		{name: "condition without values", doc: apDoc(`
  rules:
  - when:
    - key: source.namespace
`), want: []string{
			"authz.yaml:10: AuthorizationPolicy foo/httpbin: spec.rules[0].when[0]: at least one of values or notValues is required for key source.namespace",
		}},
		{name: "condition value formats", doc: apDoc(`
  rules:
  - when:
    - key: source.ip
      values: ["10.1.2.3", "10.1.0.0/16", "not-an-ip"]
    - key: destination.port
      notValues: ["https"]
    - key: remote.ip
      values: [""]
    - key: source.serviceAccount
      values: ["a/b/c"]
`), want: []string{
			"authz.yaml:11: AuthorizationPolicy foo/httpbin: spec.rules[0].when[0].values[2]: \"not-an-ip\" is not an IP address or CIDR range",
			"authz.yaml:13: AuthorizationPolicy foo/httpbin: spec.rules[0].when[1].notValues[0]: \"https\" is not a port number (0-65535)",
			"authz.yaml:15: AuthorizationPolicy foo/httpbin: spec.rules[0].when[2].values[0]: must not be empty",
			"authz.yaml:17: AuthorizationPolicy foo/httpbin: spec.rules[0].when[3].values[0]: \"a/b/c\": expected <serviceaccount> or <namespace>/<serviceaccount>",
		}},
		{name: "condition map keys", doc: apDoc(`
  rules:
  - when:
    - key: request.headers
      values: ["x"]
    - key: request.auth.claims[]
      values: ["x"]
    - key: experimental.envoy.filters.network.mysql_proxy
      values: ["x"]
`), want: []string{
			"authz.yaml:10: AuthorizationPolicy foo/httpbin: spec.rules[0].when[0].key: \"request.headers\" must have the form request.headers[<name>]",
			"authz.yaml:12: AuthorizationPolicy foo/httpbin: spec.rules[0].when[1].key: \"request.auth.claims[]\" must have the form request.auth.claims[<name>]",
			"authz.yaml:14: AuthorizationPolicy foo/httpbin: spec.rules[0].when[2].key: \"experimental.envoy.filters.network.mysql_proxy\" must have the form experimental.envoy.filters.<filter>[<key>]",
		}},
		{name: "replaced attributes", doc: apDoc(`
  rules:
  - when:
    - key: destination.labels[app]
      values: ["x"]
    - key: destination.namespace
      values: ["foo"]
    - key: destination.user
      values: ["bar"]
`), want: []string{
			"authz.yaml:10: AuthorizationPolicy foo/httpbin: spec.rules[0].when[0].key: attribute destination.labels[app] is not supported; use the policy's workload selector",
			"authz.yaml:12: AuthorizationPolicy foo/httpbin: spec.rules[0].when[1].key: attribute destination.namespace is not supported; the policy's metadata.namespace selects the namespace",
			"authz.yaml:14: AuthorizationPolicy foo/httpbin: spec.rules[0].when[2].key: attribute destination.user was only supported in v1alpha1 policies",
		}},
		{name: "custom with identity attributes", doc: apDoc(`
  action: CUSTOM
  provider:
    name: ext-authz
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/sleep"]
        ipBlocks: ["10.0.0.0/8"]
    when:
    - key: request.auth.claims[iss]
      values: ["https://accounts.google.com"]
`), want: []string{
			"authz.yaml:14: AuthorizationPolicy foo/httpbin: spec.rules[0].from[0].source.principals: not supported with action CUSTOM",
			"authz.yaml:17: AuthorizationPolicy foo/httpbin: spec.rules[0].when[0].key: request.auth.claims[iss] is not supported with action CUSTOM",
		}},
		{name: "service accounts", doc: apDoc(`
  rules:
  - from:
    - source:
        serviceAccounts: ["foo/sleep", "a/b/c", "/sleep", "ns/*"]
        namespaces: ["foo"]
`), want: []string{
			"authz.yaml:11: AuthorizationPolicy foo/httpbin: spec.rules[0].from[0].source.serviceAccounts: cannot be set together with principals or namespaces",
			"authz.yaml:11: AuthorizationPolicy foo/httpbin: spec.rules[0].from[0].source.serviceAccounts[1]: \"a/b/c\": expected <serviceaccount> or <namespace>/<serviceaccount>",
			"authz.yaml:11: AuthorizationPolicy foo/httpbin: spec.rules[0].from[0].source.serviceAccounts[2]: \"/sleep\": expected <serviceaccount> or <namespace>/<serviceaccount>, with neither part empty",
			"authz.yaml:11: AuthorizationPolicy foo/httpbin: spec.rules[0].from[0].source.serviceAccounts[3]: \"ns/*\": wildcards are not allowed in service accounts",
		}},
		{name: "selector labels", doc: apDoc(`
  selector:
    matchLabels:
      app: "*"
      "bad key!": v
      version: "not a value"
`), want: []string{
			"authz.yaml:10: AuthorizationPolicy foo/httpbin: spec.selector.matchLabels[app]: wildcard is not supported in a selector: \"app=*\"",
			"authz.yaml:11: AuthorizationPolicy foo/httpbin: spec.selector.matchLabels[bad key!]: invalid label key \"bad key!\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
			"authz.yaml:12: AuthorizationPolicy foo/httpbin: spec.selector.matchLabels[version]: invalid label value \"not a value\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
		}},
		{name: "empty selector", doc: apDoc(`
  selector: {}
  rules:
  - {}
`), want: []string{
			"authz.yaml:8: warning: AuthorizationPolicy foo/httpbin: spec.selector: workload selector without labels selects every workload in the namespace",
		}},
		{name: "dry run on custom", doc: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: httpbin
  namespace: foo
  annotations:
    istio.io/dry-run: "true"
spec:
  action: CUSTOM
  provider:
    name: ext-authz
  rules:
  - {}
`, want: []string{
			"authz.yaml:7: AuthorizationPolicy foo/httpbin: metadata.annotations[istio.io/dry-run]: dry-run is only supported for action ALLOW and DENY, not CUSTOM",
		}},
		{name: "dry run not a boolean", doc: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: httpbin
  namespace: foo
  annotations:
    istio.io/dry-run: "maybe"
spec:
  rules:
  - {}
`, want: []string{
			"authz.yaml:7: AuthorizationPolicy foo/httpbin: metadata.annotations[istio.io/dry-run]: \"maybe\" is not a boolean",
		}},
		{name: "deny with only http attributes", doc: apDoc(`
  action: DENY
  rules:
  - from:
    - source:
        notRequestPrincipals: ["*"]
  - to:
    - operation:
        paths: ["/admin"]
  - to:
    - operation:
        paths: ["/admin"]
        ports: ["8080"]
`), want: []string{
			"authz.yaml:10: warning: AuthorizationPolicy foo/httpbin: spec.rules[0]: this DENY rule uses only HTTP attributes, so it denies all TCP traffic to the selected workloads; set ports to scope it",
			"authz.yaml:13: warning: AuthorizationPolicy foo/httpbin: spec.rules[1]: this DENY rule uses only HTTP attributes, so it denies all TCP traffic to the selected workloads; set ports to scope it",
		}},
	})
}

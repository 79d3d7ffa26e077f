package validation

import "testing"

// efDoc is an EnvoyFilter foo/filter whose spec body starts on line 7.
func efDoc(body string) string {
	return "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata:\n  name: filter\n  namespace: foo\nspec:\n" + body
}

func TestEnvoyFilterProblems(t *testing.T) {
	secRunCases(t, "ef.yaml", []secCase{
		{name: "valid filter", doc: efDoc(`
  workloadSelector:
    labels:
      app: reviews
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOUND
      listener:
        portNumber: 8080
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
            subFilter:
              name: envoy.filters.http.router
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.lua
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
          inlineCode: "function envoy_on_request(h) end"
`)},
		{name: "missing applyTo patch and value", doc: efDoc(`
  configPatches:
  - patch:
      operation: MERGE
      value: {}
  - applyTo: CLUSTER
  - applyTo: CLUSTER
    patch:
      value: {}
  - applyTo: CLUSTER
    patch:
      operation: MERGE
  - applyTo: CLUSTER
    patch:
      operation: REMOVE
`), want: []string{
			"ef.yaml:9: EnvoyFilter foo/filter: spec.configPatches[0].applyTo: required",
			"ef.yaml:12: EnvoyFilter foo/filter: spec.configPatches[1].patch: required",
			"ef.yaml:14: EnvoyFilter foo/filter: spec.configPatches[2].patch.operation: required",
			"ef.yaml:17: EnvoyFilter foo/filter: spec.configPatches[3].patch.value: required for operation MERGE",
		}},
		{name: "applyTo and match kind disagree", doc: efDoc(`
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      cluster:
        service: reviews
    patch:
      operation: REMOVE
  - applyTo: VIRTUAL_HOST
    match:
      listener:
        portNumber: 80
    patch:
      operation: REMOVE
  - applyTo: CLUSTER
    match:
      routeConfiguration:
        portNumber: 80
    patch:
      operation: REMOVE
`), want: []string{
			"ef.yaml:10: EnvoyFilter foo/filter: spec.configPatches[0].match: applyTo HTTP_FILTER needs a listener match",
			"ef.yaml:16: EnvoyFilter foo/filter: spec.configPatches[1].match: applyTo VIRTUAL_HOST needs a routeConfiguration match",
			"ef.yaml:22: EnvoyFilter foo/filter: spec.configPatches[2].match: applyTo CLUSTER needs a cluster match",
		}},
		{name: "filter and subFilter matches", doc: efDoc(`
  configPatches:
  - applyTo: NETWORK_FILTER
    match:
      listener:
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
            subFilter:
              name: envoy.filters.http.router
    patch:
      operation: REMOVE
  - applyTo: HTTP_FILTER
    match:
      listener:
        filterChain:
          filter:
            name: envoy.filters.network.tcp_proxy
            subFilter:
              name: envoy.filters.http.router
    patch:
      operation: REMOVE
  - applyTo: HTTP_FILTER
    match:
      listener:
        filterChain:
          filter:
            subFilter:
              name: envoy.filters.http.router
    patch:
      operation: REMOVE
  - applyTo: FILTER_CHAIN
    match:
      listener:
        filterChain:
          filter:
            name: envoy.http_connection_manager
    patch:
      operation: REMOVE
`), want: []string{
			"ef.yaml:15: EnvoyFilter foo/filter: spec.configPatches[0].match.listener.filterChain.filter.subFilter: only allowed with applyTo HTTP_FILTER",
			"ef.yaml:25: EnvoyFilter foo/filter: spec.configPatches[1].match.listener.filterChain.filter.subFilter: requires the filter match to name envoy.filters.network.http_connection_manager",
			"ef.yaml:33: EnvoyFilter foo/filter: spec.configPatches[2].match.listener.filterChain.filter.name: required in a filter match",
			"ef.yaml:42: warning: EnvoyFilter foo/filter: spec.configPatches[3].match.listener.filterChain.filter: a filter match has no effect with applyTo FILTER_CHAIN",
			"ef.yaml:43: warning: EnvoyFilter foo/filter: spec.configPatches[3].match.listener.filterChain.filter.name: filter name \"envoy.http_connection_manager\" is deprecated; use \"envoy.filters.network.http_connection_manager\"",
		}},
		{name: "proxy version and context", doc: efDoc(`
  configPatches:
  - applyTo: CLUSTER
    match:
      proxy:
        proxyVersion: "^1\\.2[0-9"
    patch:
      operation: REMOVE
  - applyTo: HTTP_ROUTE
    match:
      context: WAYPOINT
    patch:
      operation: REMOVE
`), want: []string{
			"ef.yaml:12: EnvoyFilter foo/filter: spec.configPatches[0].match.proxy.proxyVersion: invalid regular expression \"^1\\\\.2[0-9\"",
			"ef.yaml:16: EnvoyFilter foo/filter: spec.configPatches[1].match: context WAYPOINT requires a waypoint match",
			"ef.yaml:17: warning: EnvoyFilter foo/filter: spec.configPatches[1].match.context: Bowline has no waypoints: the patch has no effect",
		}},
		{name: "ineffective combinations", doc: efDoc(`
  configPatches:
  - applyTo: CLUSTER
    patch:
      operation: REPLACE
      value: {}
  - applyTo: ROUTE_CONFIGURATION
    patch:
      operation: ADD
      value: {}
  - applyTo: HTTP_FILTER
    patch:
      operation: INSERT_FIRST
      filterClass: AUTHZ
      value: {}
`), want: []string{
			"ef.yaml:11: warning: EnvoyFilter foo/filter: spec.configPatches[0].patch.operation: REPLACE only applies to HTTP_FILTER, NETWORK_FILTER, LISTENER_FILTER and VIRTUAL_HOST; with CLUSTER it has no effect",
			"ef.yaml:15: warning: EnvoyFilter foo/filter: spec.configPatches[1].patch.operation: only MERGE applies to ROUTE_CONFIGURATION; ADD has no effect",
			"ef.yaml:20: warning: EnvoyFilter foo/filter: spec.configPatches[2].patch.filterClass: only used with operation ADD; ignored with INSERT_FIRST",
		}},
		{name: "patch values are Envoy messages", doc: efDoc(`
  configPatches:
  - applyTo: HTTP_FILTER
    patch:
      operation: ADD
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          stat_prefix: rl
          token_bucket: {max_tokens: "ten"}
  - applyTo: CLUSTER
    patch:
      operation: MERGE
      value:
        no_such_field: 1
  - applyTo: HTTP_FILTER
    patch:
      operation: ADD
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/udpa.type.v1.TypedStruct
          type_url: type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          value:
            stat_prefx: rl
  - applyTo: HTTP_FILTER
    patch:
      operation: ADD
      value:
        name: envoy.filters.http.mystery
        typed_config:
          "@type": type.googleapis.com/example.Mystery
  - applyTo: LISTENER_FILTER
    patch:
      operation: ADD
      value: {nmae: envoy.filters.listener.tls_inspector}
  - applyTo: EXTENSION_CONFIG
    patch:
      operation: ADD
      value: {}
`), want: []string{
			`ef.yaml:12: EnvoyFilter foo/filter: spec.configPatches[0].patch.value: not a valid envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter: invalid value for uint32 field maxTokens: "ten"`,
			`ef.yaml:21: EnvoyFilter foo/filter: spec.configPatches[1].patch.value: not a valid envoy.config.cluster.v3.Cluster: unknown field "no_such_field"`,
			`ef.yaml:26: EnvoyFilter foo/filter: spec.configPatches[2].patch.value: TypedStruct type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit: not a valid envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit: unknown field "stat_prefx"`,
			`ef.yaml:36: EnvoyFilter foo/filter: spec.configPatches[3].patch.value: not a valid envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter: unable to resolve "type.googleapis.com/example.Mystery": "not found"`,
			`ef.yaml:43: EnvoyFilter foo/filter: spec.configPatches[4].patch.value: not a valid envoy.config.listener.v3.ListenerFilter: unknown field "nmae"`,
			"ef.yaml:44: warning: EnvoyFilter foo/filter: spec.configPatches[5].applyTo: EXTENSION_CONFIG is not applied by Bowline: it serves no extension config discovery (ECDS), so the patch has no effect, and a filter whose config_discovery names this config is refused (NACK) by the proxies it reaches",
		}},
		{name: "selector and targetRefs", doc: efDoc(`
  workloadSelector:
    labels:
      app: "*"
  targetRefs:
  - kind: Gateway
    group: gateway.networking.k8s.io
    name: ingress
`), want: []string{
			"ef.yaml:10: EnvoyFilter foo/filter: spec.workloadSelector.labels[app]: wildcard is not supported in a selector: \"app=*\"",
			"ef.yaml:11: EnvoyFilter foo/filter: spec.targetRefs: only one of workloadSelector and targetRefs may be set",
		}},
	})
}

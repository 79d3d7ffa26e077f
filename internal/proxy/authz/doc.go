// Package authz is the proxy's RBAC engine: it compiles
// envoy.extensions.filters.http.rbac.v3.RBAC and
// envoy.extensions.filters.network.rbac.v3.RBAC configs (what the control
// plane generates from Istio AuthorizationPolicy) into immutable matcher
// trees and evaluates requests and connections against them with Envoy's
// semantics. It also owns HTTP path normalization (NormalizePath), because
// what RBAC matches must be exactly the path the router and the upstream see.
//
// It is pure: no I/O, no goroutines, no package state; it imports only the
// Envoy protos. It must not import the rest of the proxy or the control plane.
//
// # Wire-up contract for the proxy
//
// Config time (xDS -> checked config; an error is a NACK naming the field):
//
//   - For each HCM http_filters entry with type URL
//     type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC, unmarshal
//     it and call NewHTTP once. Keep the *Engine in the checked filter chain in
//     order: the control plane emits jwt_authn, then RBAC filters in Istio's
//     order (CUSTOM-as-DENY, AUDIT/LOG, DENY, ALLOW), then the router. Several
//     RBAC filters share the name envoy.filters.http.rbac; each is its own
//     Engine and all of them must pass.
//   - For each network filter with type URL
//     type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC that
//     precedes tcp_proxy in a filter chain, call NewNetwork once.
//   - Read the HCM's normalize_path, merge_slashes and
//     path_with_escaped_slashes_action into a PathOptions.
//
// Per HTTP request, before any filter and before routing:
//
//  1. path, redirect, err := NormalizePath(r.URL.RequestURI(), opts): on
//     ErrEscapedSlash answer 400; on redirect answer 307 with Location path;
//     otherwise use path for routing, for RBAC and as the upstream :path
//     (Envoy forwards the normalized path; anything else reopens bypasses).
//  2. Fill a Request: Method, Host (r.Host), Path (normalized), Headers
//     (r.Header works), Source (downstream peer), Remote (trusted XFF client,
//     or zero), Destination (local/original destination), SNI, Principal and
//     Authenticated from the verified peer certificate (URI SAN, e.g.
//     spiffe://cluster.local/ns/default/sa/sleep), and Metadata with the
//     jwt_authn output: {"envoy.filters.http.jwt_authn": {"payload": claims}}
//     (jwtauthn.Result.Metadata gives exactly this).
//  3. For each Engine in order: d := e.Evaluate(req). If !d.Allowed stop and
//     answer DeniedStatus (403) with body DeniedBody ("RBAC: access denied",
//     content-type text/plain); response_code_details d.ResponseDetails()
//     (rbac_access_denied_matched_policy[NAME|none]). Envoy sets no response
//     flag for RBAC denials (UAEX is ext_authz's): the access log shows "-".
//     If d.Logged, mark the request for the access log (Envoy's
//     access_log_hint). Shadow results (d.HasShadow) are only counted/logged:
//     stats <prefix>shadow_allowed / shadow_denied with e.ShadowStatPrefix.
//     Count <RulesStatPrefix>allowed / denied per filter.
//
// Per TCP connection (network RBAC, enforcement ONE_TIME_ON_FIRST_BYTE):
// before dialing the upstream, Evaluate a Request with only Source, Remote
// (zero), Destination, SNI, Principal/Authenticated; on denial close the
// connection with termination details d.ResponseDetails() and do not connect
// upstream.
//
// Path and principal matching: Path holds the normalized :path with the
// query; url_path and uri_template matchers ignore the query and fragment.
// Principals match only when Authenticated is true (mTLS); a plaintext
// request never matches a principals/namespaces rule.
package authz

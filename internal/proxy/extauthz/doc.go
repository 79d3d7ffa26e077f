// Package extauthz is the proxy's external authorization filter:
// envoy.extensions.filters.http.ext_authz.v3.ExtAuthz (what the control plane
// generates for Istio's AuthorizationPolicy action CUSTOM with a MeshConfig
// envoyExtAuthzGrpc or envoyExtAuthzHttp provider) and the connection-level
// check of envoy.filters.network.ext_authz.
//
// The check speaks Envoy's two protocols to the authorization service:
//   - gRPC: envoy.service.auth.v3.Authorization/Check with a CheckRequest
//     carrying the request's attributes (go-control-plane's types over
//     grpc-go); an OK status allows, applying ok_response's header edits; any
//     other status denies with denied_response's status (403 when unset),
//     headers and body;
//   - HTTP: the client request's method and path (after path_prefix) with
//     the allowed headers (Host, Method, Path, Content-Length and
//     Authorization always) and no body unless with_request_body; a 200
//     allows, copying the allowed_upstream_headers onto the request; a 5xx is
//     an error; any other status denies with that status, the authorization
//     response's body and its headers (allowed_client_headers when set, else
//     all but Host).
//
// An error (the service unreachable, a timeout, a 5xx, a malformed answer)
// fails closed with status_on_error (403 by default) unless
// failure_mode_allow lets the request through. Denials and errors carry
// Envoy's response flag UAEX.
//
// The filter runs only when filter_enabled_metadata matches the dynamic
// metadata of earlier filters (Istio's CUSTOM: the preceding RBAC filter's
// shadow rules name the matched policy, istio-ext-authz-PROVIDER-...).
//
// Wire-up: the xdsconfig package checks the proto and fills a Config; the
// proxy builds a Filter from it with a Pool that reaches the service's
// cluster through an injected Dialer, and calls Check before the router.
// It imports authz (matchers) only; it must not import the rest of the
// proxy or the control plane.
package extauthz

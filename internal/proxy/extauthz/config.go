package extauthz

import (
	"time"

	"github.com/bowline-mesh/bowline/internal/proxy/authz"
)

// Protocol is how the filter talks to the authorization service.
type Protocol int

// Protocols of Config.Protocol.
const (
	// GRPC is envoy.service.auth.v3.Authorization/Check (grpc_service).
	GRPC Protocol = iota
	// HTTP is Envoy's raw HTTP authorization protocol (http_service).
	HTTP
)

// DefaultTimeout is Envoy's check timeout when the service sets none.
const DefaultTimeout = 200 * time.Millisecond

// Config is a checked ext_authz filter config; immutable, shared by all
// requests.
type Config struct {
	// Protocol is the service's protocol.
	Protocol Protocol
	// Cluster is the cluster the service is reached through.
	Cluster string
	// Authority is the :authority of gRPC checks (envoy_grpc.authority, the
	// cluster name when unset) and the Host of HTTP checks is the client's.
	Authority string
	// Timeout bounds one check (DefaultTimeout when the config sets none).
	Timeout time.Duration
	// PathPrefix is prepended to the path of HTTP checks.
	PathPrefix string
	// FailureModeAllow lets requests through when the check fails (not
	// when it denies); FailureModeAllowHeaderAdd then adds
	// x-envoy-auth-failure-mode-allowed: true to them.
	FailureModeAllow, FailureModeAllowHeaderAdd bool
	// StatusOnError is the status of requests refused because the check
	// failed (403 when the config sets none).
	StatusOnError int
	// AllowedHeaders are the client request headers sent in the check; nil
	// sends all of them (gRPC) or only the default set (HTTP).
	AllowedHeaders []authz.StringMatcher
	// DisallowedHeaders are never sent; they win over AllowedHeaders.
	DisallowedHeaders []authz.StringMatcher
	// HeadersToAdd are set on HTTP check requests
	// (authorization_request.headers_to_add).
	HeadersToAdd []Header
	// UpstreamHeaders are the HTTP authorization response's headers set on
	// the allowed request (allowed_upstream_headers), UpstreamHeadersToAppend
	// those appended (allowed_upstream_headers_to_append).
	UpstreamHeaders, UpstreamHeadersToAppend []authz.StringMatcher
	// ClientHeaders are the HTTP authorization response's headers sent to
	// the client with a denial (allowed_client_headers); nil sends all but
	// Host.
	ClientHeaders []authz.StringMatcher
	// ClientHeadersOnSuccess are those added to the response of an allowed
	// request (allowed_client_headers_on_success); nil adds none.
	ClientHeadersOnSuccess []authz.StringMatcher
	// Body, when set, buffers the request body and sends it in the check.
	Body *BodySettings
	// Enabled, when set, runs the check only for requests whose dynamic
	// metadata matches (filter_enabled_metadata); other requests pass.
	Enabled *authz.MetadataMatcher
	// IncludePeerCertificate sends the peer's leaf certificate (URL-encoded
	// PEM) in the source peer of gRPC checks.
	IncludePeerCertificate bool
	// IncludeTLSSession sends the TLS server name in gRPC checks.
	IncludeTLSSession bool
	// MetadataNamespaces are the dynamic metadata namespaces sent in gRPC
	// checks (metadata_context_namespaces).
	MetadataNamespaces []string
	// StatPrefix is the filter's stat_prefix (ext_authz.PREFIX.*).
	StatPrefix string
}

// BodySettings is ExtAuthz.with_request_body.
type BodySettings struct {
	// MaxBytes is the most the filter buffers; a larger body is refused 413
	// unless AllowPartial, which sends its first MaxBytes.
	MaxBytes     uint32
	AllowPartial bool
	// PackAsBytes sends the body as raw_body (gRPC) instead of a UTF-8 string.
	PackAsBytes bool
}

// Header is one header name and value.
type Header struct {
	Key, Value string
}

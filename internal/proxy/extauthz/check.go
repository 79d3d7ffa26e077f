package extauthz

import (
	"context"
	"errors"
	"net/http"
	"net/netip"

	"github.com/bowline-mesh/bowline/internal/proxy/authz"
)

// Request is what a check tells the authorization service about one client
// request. The filter never modifies it.
type Request struct {
	// ID is x-request-id.
	ID string
	// Method, Host, Path (query included), Scheme and Protocol ("HTTP/1.1",
	// "HTTP/2") describe the request line.
	Method, Host, Path, Scheme, Protocol string
	// Headers are the client request headers.
	Headers http.Header
	// Size is the request body size from Content-Length, -1 when unknown.
	Size int64
	// Body is the buffered body (Config.Body), Partial when it was cut.
	Body    []byte
	Partial bool
	// Source and Destination are the connection's peer and local address.
	Source, Destination netip.AddrPort
	// SourcePrincipal is the verified peer identity (its URI SAN), "" for
	// plaintext; DestinationPrincipal the proxy's own identity.
	SourcePrincipal, DestinationPrincipal string
	// SourceCertificate is the peer's leaf certificate, URL-encoded PEM.
	SourceCertificate string
	// SNI is the TLS server name the client asked for.
	SNI string
	// ContextExtensions are the route's check_settings.context_extensions.
	ContextExtensions map[string]string
	// Metadata is the dynamic metadata of earlier filters by filter name.
	Metadata map[string]map[string]any
}

// Status is a check's outcome.
type Status int

// Check outcomes.
const (
	// OK: the service allowed the request.
	OK Status = iota
	// Denied: the service refused it.
	Denied
	// Error: the check failed (unreachable, timeout, 5xx, malformed answer).
	Error
)

// Decision is what the filter does with a request.
type Decision struct {
	// Status is the check's outcome.
	Status Status
	// Allow says whether the request goes on: OK, or an Error with
	// failure_mode_allow (FailedOpen).
	Allow, FailedOpen bool
	// Code and Body are the local reply of a refused request.
	Code int
	Body string
	// ResponseHeaders go to the client: with the local reply of a denial,
	// or added to the upstream response of an allowed request.
	ResponseHeaders []Header
	// SetHeaders, AppendHeaders and RemoveHeaders edit the allowed request
	// before it goes upstream.
	SetHeaders, AppendHeaders []Header
	RemoveHeaders             []string
	// Err is why the check failed (Status Error).
	Err error
}

// Response flag and details of refused requests, as Envoy's.
const (
	// ResponseFlag is Envoy's UnauthorizedExternalService flag.
	ResponseFlag = "UAEX"
	// DetailsDenied and DetailsError are response_code_details.
	DetailsDenied = "ext_authz_denied"
	DetailsError  = "ext_authz_error"
	// HeaderFailureModeAllowed marks requests let through by failure_mode_allow.
	HeaderFailureModeAllowed = "x-envoy-auth-failure-mode-allowed"
	// HeaderPartialBody tells an HTTP service whether the body was cut.
	HeaderPartialBody = "x-envoy-auth-partial-body"
)

// checker is one protocol's way of asking the service.
type checker interface {
	check(ctx context.Context, cfg *Config, r *Request) (Decision, error)
}

// Filter is the runtime of one ext_authz filter config; safe for
// concurrent use.
type Filter struct {
	cfg *Config
	c   checker
}

// Config returns the filter's config.
func (f *Filter) Config() *Config { return f.cfg }

// Enabled reports whether the filter checks a request with this dynamic
// metadata (filter_enabled_metadata).
func (f *Filter) Enabled(md map[string]map[string]any) bool {
	return f.cfg.Enabled == nil || f.cfg.Enabled.Match(md)
}

// Check asks the authorization service about r and returns what to do.
func (f *Filter) Check(ctx context.Context, r *Request) Decision {
	timeout := f.cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d, err := f.c.check(ctx, f.cfg, r)
	if err != nil {
		d = Decision{Status: Error, Err: err}
	}
	switch d.Status {
	case OK:
		d.Allow = true
	case Denied:
		if d.Code == 0 {
			d.Code = http.StatusForbidden
		}
	case Error:
		if f.cfg.FailureModeAllow {
			d = Decision{Status: Error, Allow: true, FailedOpen: true, Err: d.Err}
			if f.cfg.FailureModeAllowHeaderAdd {
				d.SetHeaders = []Header{{Key: HeaderFailureModeAllowed, Value: "true"}}
			}
			return d
		}
		d = Decision{Status: Error, Code: f.cfg.StatusOnError, Err: d.Err}
		if d.Code == 0 {
			d.Code = http.StatusForbidden
		}
	}
	return d
}

// errTimeout is a check that ran out of time.
var errTimeout = errors.New("authorization service timed out")

func ctxErr(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errTimeout
	}
	return err
}

// headerAllowed reports whether a client request header is sent in the
// check: not disallowed, and allowed (or everything when allowed is nil
// and all is set).
func headerAllowed(name string, allowed, disallowed []authz.StringMatcher, all bool) bool {
	if matchAny(disallowed, name) {
		return false
	}
	if allowed == nil {
		return all
	}
	return matchAny(allowed, name)
}

func matchAny(ms []authz.StringMatcher, v string) bool {
	for _, m := range ms {
		if m.Match(v) {
			return true
		}
	}
	return false
}

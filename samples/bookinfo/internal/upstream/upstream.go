// Package upstream owns how a Bookinfo service reaches another one: the
// service's address (a plain service name, as inside a mesh, adjustable by
// environment variables the way Istio's Bookinfo is) and an HTTP client that
// goes through the proxy named by HTTP_PROXY, which is how a Bowline sidecar
// receives the application's outbound traffic.
//
// It imports only the standard library and none of Bowline's packages.
package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultPort is the port every Bookinfo service listens on.
const DefaultPort = "9080"

// BaseURL returns "http://<host><domain>:<port>" for the named service.
// <host> is $<NAME>_HOSTNAME (for example DETAILS_HOSTNAME) or the service
// name; <domain> is "."+$SERVICES_DOMAIN when that is set; <port> is the
// given port, or DefaultPort when empty.
func BaseURL(getenv func(string) string, service, port string) string {
	host := getenv(strings.ToUpper(service) + "_HOSTNAME")
	if host == "" {
		host = service
	}
	if d := getenv("SERVICES_DOMAIN"); d != "" {
		host += "." + d
	}
	if port == "" {
		port = DefaultPort
	}
	return "http://" + net.JoinHostPort(host, port)
}

// ProxyFunc chooses the proxy for a request, like http.ProxyFromEnvironment.
type ProxyFunc func(*http.Request) (*url.URL, error)

// NewClient returns a client whose requests go through proxy (nil means
// http.ProxyFromEnvironment, which reads HTTP_PROXY and NO_PROXY). The client
// has no overall timeout: callers bound each call with a context.
func NewClient(proxy ProxyFunc) *http.Client {
	if proxy == nil {
		proxy = http.ProxyFromEnvironment
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = proxy
	return &http.Client{Transport: tr}
}

// Result is the outcome of one call: the HTTP status (0 when no response
// arrived) and the transport error, if any.
type Result struct {
	Status int
	Err    error
}

// OK reports whether the call got a 200 response whose body decoded.
func (r Result) OK() bool { return r.Err == nil && r.Status == http.StatusOK }

// GetJSON sends GET url with the given headers, waits at most timeout for the
// whole exchange, and decodes a 200 response body into v. Other statuses are
// returned without decoding.
func GetJSON(ctx context.Context, c *http.Client, rawURL string, h http.Header, timeout time.Duration, v any) Result {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return Result{Err: fmt.Errorf("build request %s: %w", rawURL, err)}
	}
	for k, vs := range h {
		req.Header[k] = append([]string(nil), vs...)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return Result{Err: fmt.Errorf("get %s: %w", rawURL, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return Result{Status: resp.StatusCode}
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v); err != nil {
		return Result{Status: resp.StatusCode, Err: fmt.Errorf("decode %s: %w", rawURL, err)}
	}
	return Result{Status: resp.StatusCode}
}

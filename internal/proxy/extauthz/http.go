package extauthz

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// httpChecker asks with Envoy's raw HTTP authorization protocol.
type httpChecker struct{ client *http.Client }

// maxAuthzBody bounds what is read of an authorization response's body.
const maxAuthzBody = 1 << 20

func (c *httpChecker) check(ctx context.Context, cfg *Config, r *Request) (Decision, error) {
	var body io.Reader = http.NoBody
	if cfg.Body != nil && r.Body != nil {
		body = bytes.NewReader(r.Body)
	}
	path := cfg.PathPrefix + r.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	host := r.Host
	if host == "" {
		host = cfg.Cluster
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, "http://authz/", body)
	if err != nil {
		return Decision{}, fmt.Errorf("authorization request: %w", err)
	}
	// The client's path as sent (escapes kept) and Host; the connection
	// goes to the service's cluster whatever the URL says.
	req.URL = &url.URL{Scheme: "http", Host: host, Opaque: path}
	req.Host = host
	for k, vs := range r.Headers {
		name := strings.ToLower(k)
		if name == "host" || name == "content-length" || name == "transfer-encoding" || name == "connection" {
			continue
		}
		allowed := cfg.AllowedHeaders != nil && matchAny(cfg.AllowedHeaders, name)
		if name == "authorization" {
			allowed = true
		}
		if !allowed || matchAny(cfg.DisallowedHeaders, name) {
			continue
		}
		req.Header[http.CanonicalHeaderKey(name)] = []string{strings.Join(vs, ",")}
	}
	for _, h := range cfg.HeadersToAdd {
		req.Header.Set(h.Key, h.Value)
	}
	if cfg.Body != nil && r.Body != nil {
		req.ContentLength = int64(len(r.Body))
		req.Header.Set(HeaderPartialBody, strconv.FormatBool(r.Partial))
	} else {
		req.ContentLength = 0
		req.Header.Set("Content-Length", "0")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return Decision{}, ctxErr(ctx, fmt.Errorf("authorization request: %w", err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAuthzBody))
	if err != nil {
		return Decision{}, ctxErr(ctx, fmt.Errorf("authorization response: %w", err))
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		d := Decision{Status: OK}
		for k, vs := range resp.Header {
			name := strings.ToLower(k)
			if name == "x-envoy-auth-headers-to-remove" {
				for _, v := range vs {
					for _, h := range strings.Split(v, ",") {
						if h = strings.ToLower(strings.TrimSpace(h)); h != "" && !strings.HasPrefix(h, ":") && h != "host" {
							d.RemoveHeaders = append(d.RemoveHeaders, h)
						}
					}
				}
				continue
			}
			for _, v := range vs {
				if matchAny(cfg.UpstreamHeaders, name) {
					d.SetHeaders = append(d.SetHeaders, Header{Key: name, Value: v})
				}
				if matchAny(cfg.UpstreamHeadersToAppend, name) {
					d.AppendHeaders = append(d.AppendHeaders, Header{Key: name, Value: v})
				}
				if matchAny(cfg.ClientHeadersOnSuccess, name) {
					d.ResponseHeaders = append(d.ResponseHeaders, Header{Key: name, Value: v})
				}
			}
		}
		return d, nil
	case resp.StatusCode >= 500:
		return Decision{}, fmt.Errorf("authorization service answered %d", resp.StatusCode)
	}
	d := Decision{Status: Denied, Code: resp.StatusCode, Body: string(b)}
	for k, vs := range resp.Header {
		name := strings.ToLower(k)
		if !clientHeaderOnDeny(cfg, name) {
			continue
		}
		for _, v := range vs {
			d.ResponseHeaders = append(d.ResponseHeaders, Header{Key: name, Value: v})
		}
	}
	return d, nil
}

// clientHeaderOnDeny says whether a header of a denying authorization
// response reaches the client: all but Host and the framing headers when
// allowed_client_headers is unset; else those it matches and Path, Status,
// WWW-Authenticate and Location (Envoy adds them to the list).
func clientHeaderOnDeny(cfg *Config, name string) bool {
	switch name {
	case "host", "content-length", "transfer-encoding", "connection", "date":
		return false
	}
	if cfg.ClientHeaders == nil {
		return true
	}
	switch name {
	case "path", "status", "www-authenticate", "location":
		return true
	}
	return matchAny(cfg.ClientHeaders, name)
}

package proxy

import (
	"bufio"
	"bytes"
	"strings"
)

// maxHTTPInspect is how many bytes the http_inspector reads at most for a
// request line (Envoy's MAX_INSPECT_SIZE); a longer one is not HTTP.
const maxHTTPInspect = 8192

// h2ClientMagic opens the HTTP/2 client preface; the http_inspector calls
// a connection starting with it h2c, as Envoy's does.
const h2ClientMagic = "PRI * HTTP/2"

// httpMethods are the request methods the inspector recognizes (those of
// Envoy's HTTP/1 parser).
var httpMethods = []string{
	"ACL", "BIND", "CHECKOUT", "CONNECT", "COPY", "DELETE", "GET", "HEAD", "LINK", "LOCK", "M-SEARCH",
	"MERGE", "MKACTIVITY", "MKCALENDAR", "MKCOL", "MOVE", "NOTIFY", "OPTIONS", "PATCH", "POST", "PROPFIND",
	"PROPPATCH", "PURGE", "PUT", "QUERY", "REBIND", "REPORT", "SEARCH", "SOURCE", "SUBSCRIBE", "TRACE",
	"UNBIND", "UNLINK", "UNLOCK", "UNSUBSCRIBE",
}

// sniffHTTP is envoy.filters.listener.http_inspector: it peeks (without
// consuming) at a plaintext connection's first bytes until they decide
// the application protocol: "h2c" for the HTTP/2 client preface,
// "http/1.0" or "http/1.1" for an HTTP/1.x request line, "" for anything
// else (the bytes stop looking like a request line, or the line is over
// maxHTTPInspect). It returns the read error (a deadline: the client went
// quiet before they decided; the caller applies the listener's timeout
// policy).
func sniffHTTP(br *bufio.Reader) (string, error) {
	n := 1
	for {
		// Everything buffered, and at least n bytes (waiting for them).
		data, err := br.Peek(min(max(n, br.Buffered()), maxHTTPInspect))
		if err != nil {
			return "", err
		}
		if proto, done := httpProtocol(data); done {
			return proto, nil
		}
		if len(data) >= maxHTTPInspect {
			return "", nil
		}
		n = len(data) + 1 // undecided: wait for one byte more
	}
}

// httpProtocol decides the application protocol from a connection's first
// bytes, or reports that they are a prefix of a request line or preface
// that needs more bytes (done false).
func httpProtocol(data []byte) (proto string, done bool) {
	if len(data) < len(h2ClientMagic) && strings.HasPrefix(h2ClientMagic, string(data)) {
		return "", false
	}
	if bytes.HasPrefix(data, []byte(h2ClientMagic)) {
		return "h2c", true
	}
	line, complete := data, false
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		line, complete = data[:i], true
	}
	method, rest, sp := bytes.Cut(line, []byte(" "))
	if !sp {
		if complete || !isMethodPrefix(method) {
			return "", true
		}
		return "", false
	}
	if !isMethod(method) {
		return "", true
	}
	target, version, sp := bytes.Cut(rest, []byte(" "))
	for _, c := range target {
		if c <= ' ' || c == 0x7f {
			return "", true
		}
	}
	if !sp {
		// An HTTP/0.9 line ("GET /"), else a target still coming.
		return "", complete
	}
	if len(target) == 0 {
		return "", true
	}
	for _, v := range []string{"HTTP/1.1", "HTTP/1.0"} {
		if string(version) == v && complete {
			return strings.ToLower(v), true
		}
		if !complete && strings.HasPrefix(v, string(version)) {
			return "", false
		}
	}
	return "", true
}

func isMethod(m []byte) bool {
	for _, k := range httpMethods {
		if string(m) == k {
			return true
		}
	}
	return false
}

func isMethodPrefix(m []byte) bool {
	for _, k := range httpMethods {
		if strings.HasPrefix(k, string(m)) {
			return true
		}
	}
	return false
}

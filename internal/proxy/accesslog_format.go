package proxy

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// formatValue is one command operator's value for a finished request, as
// Envoy renders it; "" when the request has none (shown as "-").
func formatValue(p *xdsconfig.FormatPart, x *exchange) string {
	rec := x.rec
	switch p.Op {
	case "START_TIME":
		return rec.start.UTC().Format("2006-01-02T15:04:05.000Z")
	case "REQ", "RESP":
		h := x.r.Header
		if p.Op == "RESP" {
			h = x.w.Header()
		}
		if v := pseudoOrHeader(p.Header, x, h); v != "" {
			return v
		}
		if p.Alt != "" {
			return pseudoOrHeader(p.Alt, x, h)
		}
		return ""
	case "RESPONSE_CODE":
		return strconv.Itoa(rec.code)
	case "RESPONSE_FLAGS":
		return rec.flags.String()
	case "RESPONSE_CODE_DETAILS", "CONNECTION_TERMINATION_DETAILS":
		return rec.details
	case "BYTES_RECEIVED":
		return strconv.FormatInt(rec.bytesIn, 10)
	case "BYTES_SENT":
		return strconv.FormatInt(rec.bytesOut, 10)
	case "DURATION":
		return strconv.FormatInt(rec.duration.Milliseconds(), 10)
	case "PROTOCOL":
		return rec.protocol
	case "UPSTREAM_HOST":
		return rec.upstreamHost
	case "UPSTREAM_CLUSTER":
		return rec.upstreamCluster
	case "UPSTREAM_TRANSPORT_FAILURE_REASON":
		return rec.transportFailure
	case "DOWNSTREAM_REMOTE_ADDRESS":
		if x.info != nil && x.info.src.IsValid() {
			return x.info.src.String()
		}
	case "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT":
		if x.info != nil && x.info.src.IsValid() {
			return x.info.src.Addr().String()
		}
	case "DOWNSTREAM_LOCAL_ADDRESS":
		if x.info != nil && x.info.dst.IsValid() {
			return x.info.dst.String()
		}
	case "DOWNSTREAM_PEER_URI_SAN":
		if rec.peer != nil {
			return rec.peer.principal
		}
	case "REQUESTED_SERVER_NAME":
		if x.r.TLS != nil {
			return x.r.TLS.ServerName
		}
	case "ROUTE_NAME":
		if x.route != nil {
			return x.route.Name
		}
	case "HOSTNAME":
		return hostname()
	}
	return ""
}

// hostname is the machine's name (%HOSTNAME%), read once: os.Hostname
// reads a file, which a per-request log line should not.
var hostname = sync.OnceValue(func() string {
	h, _ := os.Hostname()
	return h
})

// pseudoOrHeader reads a request or response header by lower-case name,
// with HTTP/2's pseudo-headers of the request (:method, :path, :authority,
// :scheme).
func pseudoOrHeader(name string, x *exchange, h map[string][]string) string {
	switch name {
	case ":method":
		return x.rec.method
	case ":path":
		return x.rec.path
	case ":authority":
		return x.rec.authority
	case ":scheme":
		if x.r.TLS != nil {
			return "https"
		}
		return "http"
	}
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return strings.Join(v, ",")
		}
	}
	return ""
}

// renderParts renders a format; an operator without a value is "-", as Envoy writes it.
func renderParts(b []byte, parts []xdsconfig.FormatPart, x *exchange) []byte {
	for i := range parts {
		p := &parts[i]
		if p.Op == "" {
			b = append(b, p.Literal...)
			continue
		}
		v := formatValue(p, x)
		if p.Max > 0 && len(v) > p.Max {
			v = v[:p.Max]
		}
		if v == "" {
			v = "-"
		}
		b = append(b, v...)
	}
	return b
}

// renderFormat is one access log line in a custom log_format: the text, or
// a JSON object of the keys with their rendered values.
func renderFormat(f *xdsconfig.LogFormat, x *exchange) []byte {
	if f.JSON == nil {
		return renderParts(nil, f.Text, x)
	}
	obj := make(map[string]string, len(f.JSON))
	for _, fld := range f.JSON {
		obj[fld.Key] = string(renderParts(nil, fld.Value, x))
	}
	b, _ := json.Marshal(obj) // keys sorted
	return append(b, '\n')
}

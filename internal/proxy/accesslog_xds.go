package proxy

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// xdsLogs writes the access logs HCMs configure over xDS (access_log:
// Envoy's file logger with a CEL filter), one logger per path and format.
type xdsLogs struct {
	p  *Proxy
	mu sync.Mutex
	by map[xdsLogKey]*accessLogger
}

type xdsLogKey struct {
	path string
	json bool
}

// logAccess writes rec to every access_log of the HCM whose filter accepts it.
func (p *Proxy) logAccess(x *exchange) {
	var vars map[string]any
	for i := range x.hcm.AccessLogs {
		al := &x.hcm.AccessLogs[i]
		if al.Path == "/dev/null" {
			continue
		}
		if al.Filter != nil {
			if vars == nil {
				vars = filterVars(x)
			}
			out, _, err := al.Filter.Eval(vars)
			if ok, isBool := out.Value().(bool); err != nil || !isBool || !ok {
				continue // Envoy: an expression that fails to evaluate does not log
			}
		}
		if al.Format != nil {
			p.xdsLogs.logger(al).write(renderFormat(al.Format, x)) // accesslog_format.go
			continue
		}
		p.xdsLogs.logger(al).log(x.rec)
	}
}

func (l *xdsLogs) logger(al *xdsconfig.AccessLog) *accessLogger {
	k := xdsLogKey{path: al.Path, json: al.JSON}
	l.mu.Lock()
	defer l.mu.Unlock()
	if a := l.by[k]; a != nil {
		return a
	}
	format := accessLogText
	if al.JSON {
		format = accessLogJSON
	}
	var w io.Writer
	switch al.Path {
	case "/dev/stdout":
		w = l.p.cfg.AccessLogWriter
		if w == nil {
			w = os.Stdout
		}
	case "/dev/stderr":
		w = os.Stderr
	default:
		f, err := os.OpenFile(al.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			l.p.log.Info("access log file not writable, lines dropped", slog.String("path", al.Path), slog.String("error", err.Error()))
		} else {
			w = f
		}
	}
	a := l.p.newAccessLogger(format, w)
	l.by[k] = a
	return a
}

// filterVars are the Envoy attributes of a finished request for CEL filters.
// Each top-level attribute is built when an expression first reads it (cel-go
// resolves a func() any binding once and keeps the value), so a filter on
// response.code never copies the request headers.
func filterVars(x *exchange) map[string]any {
	rec, r := x.rec, x.r
	return map[string]any{
		"request": func() any {
			return map[string]any{
				"method": rec.method, "path": rec.path, "url_path": r.URL.Path, "host": rec.authority, "scheme": "http",
				"protocol": rec.protocol, "headers": lowerHeaders(r.Header), "id": rec.requestID, "useragent": r.UserAgent(),
				"size": rec.bytesIn, "total_size": rec.bytesIn, "duration": rec.duration,
			}
		},
		"response": func() any {
			return map[string]any{
				"code": int64(rec.code), "code_details": rec.details, "flags": int64(rec.flags), "headers": lowerHeaders(x.w.Header()),
				"size": rec.bytesOut, "total_size": rec.bytesOut, "grpc_status": rec.grpcStatus,
			}
		},
		"connection": func() any { return map[string]any{"mtls": rec.peer != nil && rec.peer.principal != ""} },
		"source": func() any {
			if x.info == nil || !x.info.src.IsValid() {
				return emptyAttrs()
			}
			return map[string]any{"address": x.info.src.Addr().String(), "port": int64(x.info.src.Port())}
		},
		"destination": func() any {
			if x.info == nil || !x.info.dst.IsValid() {
				return emptyAttrs()
			}
			return map[string]any{"address": x.info.dst.Addr().String(), "port": int64(x.info.dst.Port())}
		},
		"upstream": func() any { return map[string]any{"address": rec.upstreamHost} },
	}
}

// emptyAttrs is an attribute map of nothing (source.* of a connection
// without a peer address): reading one of its keys is an error, as in Envoy
// when the attribute is absent.
func emptyAttrs() any { return map[string]any{} }

// lowerHeaders is h as CEL's header map: lower-case names, values joined by ",".
func lowerHeaders(h http.Header) map[string]any {
	out := make(map[string]any, len(h))
	for k, v := range h {
		out[strings.ToLower(k)] = strings.Join(v, ",")
	}
	return out
}

// all returns the HCM access loggers made so far.
func (l *xdsLogs) all() []*accessLogger {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*accessLogger, 0, len(l.by))
	for _, a := range l.by {
		out = append(out, a)
	}
	return out
}

package proxy

import (
	"context"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// Access log formats.
const (
	accessLogOff  = "off"
	accessLogJSON = "json"
	accessLogText = "text"
)

// record is what one request or connection leaves in the access log and
// metrics.
type record struct {
	start           time.Time
	duration        time.Duration
	method          string
	path            string
	protocol        string
	authority       string
	requestID       string
	code            int
	flags           flags
	bytesIn         int64
	bytesOut        int64
	upstreamHost    string
	upstreamCluster string
	// services is the upstream cluster's telemetry metadata (destination_service*).
	services   []xdsconfig.ServiceMeta
	grpcStatus string
	inbound    bool
	host       *host
	listener   string
	// transportFailure is upstream_transport_failure_reason: why the
	// upstream TLS handshake failed ("" otherwise).
	transportFailure string
	// peer is the downstream mTLS peer (inbound), nil for plaintext.
	peer *peerInfo
	// peerMeta is the workload metadata the peer proxy sent (x-bowline-peer-metadata).
	peerMeta peerMetadata
	// details is Envoy's response_code_details (or connection termination
	// details) when the proxy refused the request itself: RBAC, jwt_authn.
	details string
	// audit marks a request an AUDIT policy matched (access_log_hint).
	audit bool
	// tcpStats is the istio.stats network filter of a TCP chain (nil:
	// standard TCP metrics).
	tcpStats *xdsconfig.IstioStats
}

// accessLogger writes one line per record. With a flush interval it is
// buffered as Envoy's file access logs are (file_flush_interval_msec, 1 s):
// lines collect in memory and a flusher writes them each interval, or as
// soon as accessLogFlushSize are waiting, in one write, off the request
// path; past accessLogMaxPending (a writer that does not keep up) lines are
// written by the request that logs them. Without an interval every line is
// written as it is logged.
type accessLogger struct {
	format string
	w      io.Writer
	// buffered: lines wait in pending for flush; kick wakes the flusher.
	buffered bool
	kick     chan<- struct{}

	mu      sync.Mutex
	buf     []byte // the line being encoded (unbuffered)
	pending []byte // lines not written yet (buffered)
	spare   []byte // the flusher's other buffer
	wmu     sync.Mutex
}

// Buffered access log sizes: a flush is due at accessLogFlushSize bytes;
// pending lines never exceed accessLogMaxPending.
const (
	accessLogFlushSize  = 64 << 10
	accessLogMaxPending = 1 << 20
)

func newAccessLogger(format string, w io.Writer) *accessLogger {
	return &accessLogger{format: format, w: w, buf: make([]byte, 0, 512)}
}

// bufferedAccessLogger is newAccessLogger whose lines a flusher writes
// (flushAccessLogs); kick asks for a flush before the interval.
func bufferedAccessLogger(format string, w io.Writer, kick chan<- struct{}) *accessLogger {
	a := newAccessLogger(format, w)
	a.buffered, a.kick = true, kick
	return a
}

func (a *accessLogger) on() bool { return a != nil && a.format != accessLogOff && a.w != nil }

// write writes one line rendered elsewhere (a custom log_format).
func (a *accessLogger) write(line []byte) {
	if !a.on() {
		return
	}
	a.mu.Lock()
	if a.buffered {
		a.pending = append(a.pending, line...)
		a.queued()
		return
	}
	defer a.mu.Unlock()
	_, _ = a.w.Write(line)
}

// queued is called with a.mu held after a line went to pending, and
// unlocks it.
func (a *accessLogger) queued() {
	n := len(a.pending)
	if n < accessLogMaxPending {
		a.mu.Unlock()
		if n >= accessLogFlushSize {
			select {
			case a.kick <- struct{}{}:
			default:
			}
		}
		return
	}
	// The writer is behind: this request writes what is pending.
	a.mu.Unlock()
	a.flush()
}

// newAccessLogger is the proxy's logger of format to w: buffered when the
// config sets a flush interval.
func (p *Proxy) newAccessLogger(format string, w io.Writer) *accessLogger {
	if p.cfg.AccessLogFlushInterval > 0 {
		return bufferedAccessLogger(format, w, p.logKick)
	}
	return newAccessLogger(format, w)
}

// flushAccessLogs writes the buffered access logs each flush interval, or
// when one asks, until ctx ends.
func (p *Proxy) flushAccessLogs(ctx context.Context) {
	t := time.NewTicker(p.cfg.AccessLogFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			p.flushLogs()
			return
		case <-t.C:
		case <-p.logKick:
		}
		p.flushLogs()
	}
}

// flushLogs writes every buffered access log line.
func (p *Proxy) flushLogs() {
	p.alog.flush()
	for _, a := range p.xdsLogs.all() {
		a.flush()
	}
}

// flush writes the pending lines of a buffered logger, in order.
func (a *accessLogger) flush() {
	if !a.on() || !a.buffered {
		return
	}
	a.wmu.Lock()
	defer a.wmu.Unlock()
	a.mu.Lock()
	b := a.pending
	if len(b) == 0 {
		a.mu.Unlock()
		return
	}
	a.pending, a.spare = a.spare[:0], nil
	a.mu.Unlock()
	_, _ = a.w.Write(b)
	if cap(b) <= 2*accessLogMaxPending {
		a.mu.Lock()
		a.spare = b[:0]
		a.mu.Unlock()
	}
}

func (a *accessLogger) log(r *record) {
	if !a.on() {
		return
	}
	a.mu.Lock()
	if a.buffered {
		a.pending = a.encode(a.pending, r)
		a.queued()
		return
	}
	defer a.mu.Unlock()
	a.buf = a.encode(a.buf[:0], r)
	_, _ = a.w.Write(a.buf)
}

// encode appends r's line to b.
func (a *accessLogger) encode(b []byte, r *record) []byte {
	if a.format == accessLogText {
		// Envoy's default format, abridged.
		b = append(b, '[')
		b = r.start.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, "] \""...)
		b = append(b, r.method...)
		b = append(b, ' ')
		b = append(b, r.path...)
		b = append(b, ' ')
		b = append(b, r.protocol...)
		b = append(b, "\" "...)
		b = strconv.AppendInt(b, int64(r.code), 10)
		b = append(b, ' ')
		b = append(b, r.flags.String()...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, r.bytesIn, 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, r.bytesOut, 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, r.duration.Milliseconds(), 10)
		b = append(b, " \""...)
		b = append(b, r.requestID...)
		b = append(b, "\" \""...)
		b = append(b, r.authority...)
		b = append(b, "\" \""...)
		b = append(b, r.upstreamHost...)
		b = append(b, "\" "...)
		b = append(b, r.upstreamCluster...)
		b = append(b, '\n')
	} else {
		b = append(b, `{"start_time":"`...)
		b = r.start.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","method":`...)
		b = appendJSONString(b, r.method)
		b = append(b, `,"path":`...)
		b = appendJSONString(b, r.path)
		b = append(b, `,"protocol":`...)
		b = appendJSONString(b, r.protocol)
		b = append(b, `,"response_code":`...)
		b = strconv.AppendInt(b, int64(r.code), 10)
		b = append(b, `,"response_flags":"`...)
		b = append(b, r.flags.String()...)
		b = append(b, `","bytes_received":`...)
		b = strconv.AppendInt(b, r.bytesIn, 10)
		b = append(b, `,"bytes_sent":`...)
		b = strconv.AppendInt(b, r.bytesOut, 10)
		b = append(b, `,"duration":`...)
		b = strconv.AppendInt(b, r.duration.Milliseconds(), 10)
		b = append(b, `,"upstream_host":`...)
		b = appendJSONString(b, r.upstreamHost)
		b = append(b, `,"upstream_cluster":`...)
		b = appendJSONString(b, r.upstreamCluster)
		b = append(b, `,"x_request_id":`...)
		b = appendJSONString(b, r.requestID)
		b = append(b, `,"authority":`...)
		b = appendJSONString(b, r.authority)
		if r.transportFailure != "" {
			b = append(b, `,"upstream_transport_failure_reason":`...)
			b = appendJSONString(b, r.transportFailure)
		}
		if r.peer != nil && r.peer.principal != "" {
			b = append(b, `,"downstream_peer_uri_san":`...)
			b = appendJSONString(b, r.peer.principal)
		}
		if r.details != "" {
			b = append(b, `,"response_code_details":`...)
			b = appendJSONString(b, r.details)
		}
		if r.audit {
			b = append(b, `,"rbac_audit":true`...)
		}
		b = append(b, "}\n"...)
	}
	return b
}

const hexDigits = "0123456789abcdef"

func appendJSONString(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			b = append(b, c)
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, s[i:i+n]...)
			}
			i += n
			continue
		}
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
	}
	return append(b, '"')
}

func itoa(n int) string { return strconv.Itoa(n) }

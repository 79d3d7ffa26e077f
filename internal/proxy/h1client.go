package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// The lean HTTP/1.1 upstream client. net/http's Transport hands every
// request to a per-connection writeLoop goroutine and every response back
// from a readLoop goroutine: two goroutine switches (and, at GOMAXPROCS=1,
// two netpoller wake-ups) per hop. h1pool instead writes the request and
// reads the response on the handler's goroutine over its own keep-alive
// connections. It carries idempotent requests without a body that are not
// upgrades; everything else (bodies, trailers, WebSocket, HTTP/2) keeps using the
// Transport of the same pool (cluster.go), which shares the dialer and TLS.

// h1Bufs recycles the buffered readers and writers of upstream connections;
// one set per proxy.
type h1Bufs struct {
	readers sync.Pool // *bufio.Reader, 4 KiB
	writers sync.Pool // *bufio.Writer, 4 KiB
}

const h1BufSize = 4 << 10

func newH1Bufs() *h1Bufs {
	b := &h1Bufs{}
	b.readers.New = func() any { return bufio.NewReaderSize(nil, h1BufSize) }
	b.writers.New = func() any { return bufio.NewWriterSize(nil, h1BufSize) }
	return b
}

// h1MaxIdle bounds idle connections per upstream address.
const h1MaxIdle = 256

// h1pool holds the idle keep-alive connections of one pool (cluster and
// transport socket), per upstream address.
type h1pool struct {
	c    *cluster
	pl   *pool
	bufs *h1Bufs

	mu     sync.Mutex
	idle   map[string][]*h1conn
	open   map[string]int // open connections per address, idle or busy
	closed bool
}

// h1conn is one upstream HTTP/1.1 connection.
type h1conn struct {
	conn   net.Conn
	br     *bufio.Reader
	addr   string
	idleAt time.Time
	born   time.Time
	served uint32 // responses read to the end
}

// reusable reports whether the cluster's common_http_protocol_options let
// the connection carry another request at now: not idle for longer than
// idle_timeout, younger than max_connection_duration.
func (hp *h1pool) reusable(hc *h1conn, now time.Time) bool {
	l := hp.c.cfg.Conn
	return (l.IdleTimeout <= 0 || now.Sub(hc.idleAt) < l.IdleTimeout) &&
		(l.MaxDuration <= 0 || now.Sub(hc.born) < l.MaxDuration)
}

// errH1Busy means the connection limit of the address is reached; the caller
// falls back to the Transport, which queues.
var errH1Busy = errors.New("h1 pool: connection limit reached")

// get returns an idle connection to addr, or dials one. reused tells
// whether the connection served requests before.
func (hp *h1pool) get(ctx context.Context, addr string) (hc *h1conn, reused bool, err error) {
	now := time.Now()
	hp.mu.Lock()
	for {
		l := hp.idle[addr]
		if len(l) == 0 {
			break
		}
		hc = l[len(l)-1]
		l[len(l)-1] = nil
		hp.idle[addr] = l[:len(l)-1]
		if hp.reusable(hc, now) {
			hp.mu.Unlock()
			return hc, true, nil
		}
		hp.open[addr]--
		hp.mu.Unlock()
		hp.discard(hc)
		hp.mu.Lock()
	}
	if max := int(hp.c.cfg.Limits.MaxConnections); max > 0 && hp.open[addr] >= max {
		hp.mu.Unlock()
		return nil, false, errH1Busy
	}
	hp.open[addr]++
	hp.mu.Unlock()
	conn, err := hp.c.dialConn(ctx, hp.pl, "tcp", addr)
	if err != nil {
		hp.mu.Lock()
		hp.open[addr]--
		hp.mu.Unlock()
		return nil, false, err
	}
	br := hp.bufs.readers.Get().(*bufio.Reader)
	br.Reset(conn)
	return &h1conn{conn: conn, br: br, addr: addr, born: time.Now()}, false, nil
}

// put returns a connection whose response was read to the end.
func (hp *h1pool) put(hc *h1conn) {
	hc.idleAt = time.Now()
	hc.served++
	spent := hp.c.cfg.Conn.MaxRequests > 0 && hc.served >= hp.c.cfg.Conn.MaxRequests
	hp.mu.Lock()
	// Bytes after the response (an upstream that sent more than it
	// announced) would be read as the next response: not reused.
	if !hp.closed && !spent && hp.reusable(hc, hc.idleAt) && len(hp.idle[hc.addr]) < h1MaxIdle && hc.br.Buffered() == 0 {
		hp.idle[hc.addr] = append(hp.idle[hc.addr], hc)
		hp.mu.Unlock()
		return
	}
	hp.open[hc.addr]--
	hp.mu.Unlock()
	hp.discard(hc)
}

// drop closes a connection that cannot be reused.
func (hp *h1pool) drop(hc *h1conn) {
	hp.mu.Lock()
	hp.open[hc.addr]--
	hp.mu.Unlock()
	hp.discard(hc)
}

func (hp *h1pool) discard(hc *h1conn) {
	_ = hc.conn.Close()
	hc.br.Reset(nil)
	hp.bufs.readers.Put(hc.br)
	hc.br = nil
}

// close closes the idle connections; busy ones are closed when their
// response ends.
func (hp *h1pool) close() {
	hp.mu.Lock()
	hp.closed = true
	var all []*h1conn
	for addr, l := range hp.idle {
		all = append(all, l...)
		hp.open[addr] -= len(l)
		delete(hp.idle, addr)
	}
	hp.mu.Unlock()
	for _, hc := range all {
		hp.discard(hc)
	}
}

// h1req is one upstream request of the lean client (no body).
type h1req struct {
	method, authority, path, rawQuery string
	header                            http.Header
	addr                              string // HOST:PORT to connect to
}

// aLongTimeAgo is a deadline in the past: setting it unblocks reads and
// writes at once.
var aLongTimeAgo = time.Unix(1, 0)

// roundTrip sends req over a pooled connection and reads the response
// head. The response body reads from the connection; the connection goes
// back to the pool when the body has been read to the end. ctx ending
// interrupts the exchange at any point (the error is then ctx's).
func (hp *h1pool) roundTrip(ctx context.Context, req *h1req) (*http.Response, error) {
	for {
		hc, reused, err := hp.get(ctx, req.addr)
		if err != nil {
			return nil, err
		}
		resp, retry, err := hp.exchange(ctx, hc, req, reused)
		if err == nil {
			return resp, nil
		}
		if !retry || ctx.Err() != nil {
			return nil, err
		}
		// A kept-alive connection the upstream closed while idle: try again
		// on another one, as the Transport does.
	}
}

func (hp *h1pool) exchange(ctx context.Context, hc *h1conn, req *h1req, reused bool) (*http.Response, bool, error) {
	var stop func() bool
	if ctx.Done() != nil {
		conn := hc.conn
		stop = context.AfterFunc(ctx, func() { _ = conn.SetDeadline(aLongTimeAgo) })
	}
	fail := func(err error) error {
		if stop != nil {
			stop()
		}
		hp.drop(hc)
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		return err
	}
	bw := hp.bufs.writers.Get().(*bufio.Writer)
	bw.Reset(hc.conn)
	err := writeH1Request(bw, req)
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	hp.bufs.writers.Put(bw)
	if err != nil {
		// Nothing reached an upstream that closed the idle connection.
		return nil, reused && !errors.Is(err, errBadHeader), fail(err)
	}
	hreq := &http.Request{Method: req.method}
	var resp *http.Response
	// The first byte tells an upstream that closed the idle connection
	// (EOF or reset before any answer) from a broken response.
	if _, err := hc.br.Peek(1); err != nil {
		stale := reused && idempotent(req) && (err == io.EOF || errors.Is(err, syscall.ECONNRESET))
		return nil, stale, fail(err)
	}
	for {
		resp, err = http.ReadResponse(hc.br, hreq)
		if err != nil {
			return nil, false, fail(err)
		}
		// 1xx informational responses are skipped (101 is never asked for here).
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	b := &h1body{hp: hp, hc: hc, stop: stop, ctx: ctx, rc: resp.Body, keep: !resp.Close}
	if resp.Body == http.NoBody {
		b.finish(true)
		return resp, false, nil
	}
	resp.Body = b
	return resp, false, nil
}

// idempotent reports whether a request may be sent again after the upstream
// closed the connection without answering (net/http's rule).
func idempotent(req *h1req) bool {
	switch req.method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, k1 := req.header["Idempotency-Key"]
	_, k2 := req.header["X-Idempotency-Key"]
	return k1 || k2
}

// h1body is a response body of the lean client: at EOF its connection is
// pooled again; closed early, the connection is closed.
type h1body struct {
	hp   *h1pool
	hc   *h1conn
	stop func() bool
	ctx  context.Context
	rc   io.ReadCloser
	keep bool
	done bool
}

func (b *h1body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.finish(true)
	case err != nil:
		b.finish(false)
		if cerr := b.ctx.Err(); cerr != nil {
			err = cerr
		}
	}
	return n, err
}

func (b *h1body) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

// finish releases the connection: back to the pool when the response was
// read completely and both sides keep it alive, else closed.
func (b *h1body) finish(complete bool) {
	b.done = true
	reuse := complete && b.keep
	if b.stop != nil && !b.stop() {
		reuse = false // ctx ended: the deadline is set
	}
	if reuse {
		b.hp.put(b.hc)
	} else {
		b.hp.drop(b.hc)
	}
	b.hc = nil
}

// errBadHeader is a header the upstream request cannot carry.
var errBadHeader = errors.New("invalid header field")

// writeH1Request writes the request head. Host, Content-Length,
// Transfer-Encoding and Trailer come from the request, not the header map
// (as net/http writes them).
func writeH1Request(w *bufio.Writer, req *h1req) error {
	_, _ = w.WriteString(req.method)
	_ = w.WriteByte(' ')
	// The target is always origin-form, even for a path that starts with
	// "//": the authority is the Host line, never part of the path (RFC
	// 9112 3.2.1). Writing "//evil.example/x" as an absolute-form target
	// would let a client choose the authority the next hop sees.
	path := req.path
	if path == "" {
		path = "/"
	}
	_, _ = w.WriteString(path)
	if req.rawQuery != "" {
		_ = w.WriteByte('?')
		_, _ = w.WriteString(req.rawQuery)
	}
	_, _ = w.WriteString(" HTTP/1.1\r\nHost: ")
	if !validHeaderValue(req.authority) {
		return errBadHeader
	}
	_, _ = w.WriteString(req.authority)
	_, _ = w.WriteString("\r\n")
	for k, vs := range req.header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		if !validHeaderName(k) {
			return errBadHeader
		}
		for _, v := range vs {
			if !validHeaderValue(v) {
				return errBadHeader
			}
			_, _ = w.WriteString(k)
			_, _ = w.WriteString(": ")
			_, _ = w.WriteString(v)
			_, _ = w.WriteString("\r\n")
		}
	}
	switch req.method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		_, _ = w.WriteString("Content-Length: 0\r\n")
	}
	_, err := w.WriteString("\r\n")
	return err
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// h1addr is the dial address of an upstream authority (port 80 by default).
func h1addr(hostport string) string {
	if _, _, err := net.SplitHostPort(hostport); err == nil {
		return hostport
	}
	return net.JoinHostPort(hostport, strconv.Itoa(80))
}

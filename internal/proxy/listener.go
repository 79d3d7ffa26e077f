package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// boundListener is one socket the proxy owns. Its socket survives config
// changes that keep its address; connections are dispatched per config
// snapshot at accept time.
type boundListener struct {
	addr netip.AddrPort
	name string
	// inbound: the listener carries traffic to the local workload (a
	// graceful drain of a sidecar drains only these).
	inbound bool
	ln      net.Listener
	cl      *chanListener
	srv     *http.Server

	mu    sync.Mutex
	conns map[net.Conn]struct{} // TCP-proxied connections, closed at the end of a drain
}

// connInfo is attached to every HTTP connection: which listener's config
// serves it and where it was going.
type connInfo struct {
	bound  *boundListener
	target netip.AddrPort // address of the listener whose chain serves the conn
	dst    netip.AddrPort // original destination (or local address)
	src    netip.AddrPort // downstream peer address
	// captured: dst is the SO_ORIGINAL_DST of an iptables-REDIRECTed
	// connection (ORIGINAL_DST clusters then connect to dst, as Envoy does).
	captured bool
	// peerCert is the verified client certificate of an mTLS connection,
	// set by the mTLS data path (RBAC principals read it; nil for plaintext).
	peerCert *x509.Certificate
	// peer is what the TLS handshake established (tls.go); nil for plaintext.
	peer *peerInfo
	// transport, sni and alpn are what the tls_inspector saw, alpn or the
	// application protocol the http_inspector detected (sniff.go); they
	// pick the filter chain with the destination port.
	transport string
	sni       string
	alpn      []string
	// guard follows the HTTP/1.x framing of the connection's requests
	// (h1guard.go).
	guard h1guard
	// chosen is the listener and filter chain serving the connection's
	// requests, chosen once per snapshot (requests of a connection run
	// concurrently over HTTP/2).
	chosen atomic.Pointer[chosenChain]
}

// chosenChain is the listener and chain of a connection in one snapshot.
type chosenChain struct {
	version int64
	l       *xdsconfig.Listener
	fc      *xdsconfig.FilterChain
}

// chain returns the filter chain of l that serves this connection.
func (i *connInfo) chain(l *xdsconfig.Listener) *xdsconfig.FilterChain {
	return l.ChainForConn(i.dst.Port(), i.sni, i.transport, i.alpn)
}

// chainIn returns the listener and filter chain serving the connection in
// s: chosen at the connection's first request on s, then reused.
func (i *connInfo) chainIn(s *snapshot) (*xdsconfig.Listener, *xdsconfig.FilterChain) {
	if c := i.chosen.Load(); c != nil && c.version == s.version {
		return c.l, c.fc
	}
	c := &chosenChain{version: s.version, l: s.listenerFor(i.target)}
	if c.l != nil {
		c.fc = i.chain(c.l)
	}
	i.chosen.Store(c)
	return c.l, c.fc
}

type connInfoKey struct{}

// taggedConn carries connInfo from dispatch to the HTTP server.
type taggedConn struct {
	net.Conn
	info *connInfo
	r    *bufio.Reader // bytes already buffered by a CONNECT hijack, or nil
	// preface is how much of the HTTP/2 client preface the connection's
	// first bytes matched, -1 once they did not; after the whole preface,
	// h2 filters the client's frames (h2filter.go).
	preface int
	h2      *h2filter
}

func (c *taggedConn) src() io.Reader {
	if c.r != nil {
		return c.r
	}
	return c.Conn
}

func (c *taggedConn) Read(b []byte) (n int, err error) {
	if c.h2 != nil {
		return c.h2.Read(b)
	}
	n, err = c.src().Read(b)
	if c.preface >= 0 && n > 0 {
		rest := http2.ClientPreface[c.preface:]
		m := 0
		for m < n && m < len(rest) && b[m] == rest[m] {
			m++
		}
		switch {
		case m == len(rest):
			// The preface is complete: what follows it are frames.
			c.h2 = newH2Filter(c.src(), b[m:n])
			c.h2.err, err = err, nil // returned after the frames
			n = m
		case m == n:
			c.preface += n
		default:
			c.preface = -1
		}
	}
	c.info.guard.scan(b[:n])
	return n, err
}

func (p *Proxy) listen(l *xdsconfig.Listener) (*boundListener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", l.Address.String())
	if err != nil {
		return nil, err
	}
	return &boundListener{addr: l.Address, name: l.Name, inbound: l.Inbound, ln: ln, conns: map[net.Conn]struct{}{}}, nil
}

func (p *Proxy) startListener(b *boundListener) {
	b.cl = newChanListener(b.ln.Addr())
	b.srv = &http.Server{
		Handler:           http.HandlerFunc(p.serveHTTP),
		ReadHeaderTimeout: p.cfg.requestHeadersTimeout(),
		IdleTimeout:       p.cfg.idleTimeout(),
		// The guard (h1guard.go) enforces the HCM's limit (60 KiB by
		// default, 431); this bounds what the server buffers for a head.
		MaxHeaderBytes: maxHeadBuffer,
		ErrorLog:       nil,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if tc, ok := c.(*taggedConn); ok {
				return context.WithValue(ctx, connInfoKey{}, tc.info)
			}
			return ctx
		},
	}
	// Envoy's HTTP/2 defaults where Go's differ: frames up to 16 KiB (the
	// RFC's initial SETTINGS_MAX_FRAME_SIZE; Go advertises 1 MiB). Go's
	// server bounds concurrent streams (250) and the handlers of reset
	// streams (CVE-2023-44487) and closes connections flooding CONTINUATION
	// frames (CVE-2023-45288): h2_test.go asserts both.
	// h2filter (h2filter.go) follows the client's frames with the same
	// frame size and HPACK table size.
	b.srv.HTTP2 = &http.HTTP2Config{MaxReadFrameSize: h2MaxFrame, MaxDecoderHeaderTableSize: h2DecoderTableSize}
	b.srv.Protocols = new(http.Protocols)
	b.srv.Protocols.SetHTTP1(true)
	b.srv.Protocols.SetUnencryptedHTTP2(true)
	if p.drainsGracefully(b) {
		b.srv.SetKeepAlivesEnabled(false)
	}
	p.log.Info("listener up", slog.String("listener", b.name), slog.String("address", b.ln.Addr().String()))
	p.draining.Add(2)
	go func() {
		defer p.draining.Done()
		_ = b.srv.Serve(b.cl)
	}()
	go func() {
		defer p.draining.Done()
		p.acceptLoop(b)
	}()
}

func (p *Proxy) acceptLoop(b *boundListener) {
	for {
		conn, err := b.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		p.dispatch(b, conn)
	}
}

// dispatch picks the listener and filter chain for a new connection, using
// SO_ORIGINAL_DST on use_original_dst listeners.
func (p *Proxy) dispatch(b *boundListener, conn net.Conn) {
	s := p.snap.Load()
	l := s.byAddr[b.addr]
	if l == nil {
		_ = conn.Close()
		return
	}
	local := addrPortOf(conn.LocalAddr())
	dst, target := local, l
	captured := false
	if l.UseOriginalDst {
		if od, err := originalDst(conn); err == nil {
			dst, captured = od, true
			if t := s.listenerFor(od); t != nil {
				target = t
			}
		}
	} else if l.OriginalDst {
		// Transparent inbound capture (virtualInbound on 15006): the chain is
		// chosen by the original destination port; the connection stays here.
		if od, err := originalDst(conn); err == nil {
			dst, captured = od, true
		}
	}
	info := &connInfo{bound: b, target: target.Address, dst: dst, src: addrPortOf(conn.RemoteAddr()), captured: captured,
		transport: xdsconfig.TransportRawBuffer}
	if target.NeedsInspection() {
		// tls_inspector and TLS termination (tls.go) read from the client:
		// never in the accept loop.
		p.draining.Add(1)
		go func() {
			defer p.draining.Done()
			p.serveInspected(s, b, conn, target, info)
		}()
		return
	}
	chain := target.ChainFor(dst.Port())
	if chain == nil {
		_ = conn.Close()
		return
	}
	p.serveChain(s, b, conn, target, chain, info)
}

// maxHeadBuffer bounds the bytes the HTTP server reads for one request head
// (net/http adds 4 KiB); a configured max_request_headers_kb above it is
// answered 431 here.
const maxHeadBuffer = 1 << 20

// tlsHandshakeTimeout bounds a downstream TLS handshake.
const tlsHandshakeTimeout = 10 * time.Second

// serveInspected picks the chain from the connection's first bytes (SNI,
// ALPN, TLS or not), terminates TLS for chains with a DownstreamTlsContext
// and serves the chain. A plaintext client on a TLS-only chain (STRICT) and
// a failed handshake close the connection.
func (p *Proxy) serveInspected(s *snapshot, b *boundListener, conn net.Conn, target *xdsconfig.Listener, info *connInfo) {
	br := bufio.NewReaderSize(conn, maxClientHello)
	hello, ok := sniff(conn, br, inspectorsFor(target, info.dst.Port()))
	if !ok {
		p.log.Debug("listener filters timed out", slog.String("listener", target.Name), slog.String("source", info.src.String()))
		_ = conn.Close()
		return
	}
	info.transport, info.sni, info.alpn = hello.transport, hello.sni, hello.alpn
	chain := info.chain(target)
	if chain == nil {
		_ = conn.Close()
		return
	}
	var c net.Conn = &peekedConn{Conn: conn, r: br}
	if chain.TLS != nil {
		if hello.transport != xdsconfig.TransportTLS {
			p.log.Debug("plaintext connection refused by a TLS filter chain", slog.String("listener", target.Name),
				slog.String("source", info.src.String()))
			_ = conn.Close()
			return
		}
		cfg := s.serverTLS[chain.TLS]
		if cfg == nil {
			cfg = p.serverTLS(chain.TLS) // not built with the snapshot (a listener the snapshot does not list)
		}
		tc := tls.Server(c, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), tlsHandshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			p.log.Debug("downstream tls handshake failed", slog.String("listener", target.Name),
				slog.String("source", info.src.String()), slog.String("error", err.Error()))
			_ = conn.Close()
			return
		}
		info.peer = newPeerInfo(tc.ConnectionState())
		info.peerCert = info.peer.cert
		c = tc
	}
	p.serveChain(s, b, c, target, chain, info)
}

// serveChain hands a connection to its chain: tcp_proxy (after network
// RBAC) or the HTTP server.
func (p *Proxy) serveChain(s *snapshot, b *boundListener, conn net.Conn, target *xdsconfig.Listener, chain *xdsconfig.FilterChain, info *connInfo) {
	dst := info.dst
	if chain.TCP != nil {
		p.draining.Add(1)
		go func() {
			defer p.draining.Done()
			if !p.allowConnection(context.Background(), chain, conn, info, target) { // network RBAC and ext_authz (filters_security.go)
				_ = conn.Close()
				return
			}
			p.serveTCP(s, b, conn, target, chain.TCP, dst)
		}()
		return
	}
	info.guard.limit(chain.HTTP)
	b.cl.push(&taggedConn{Conn: conn, info: info})
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// drainListener stops accepting on b and lets its connections finish for up
// to the drain duration, then closes what is left.
func (p *Proxy) drainListener(b *boundListener) {
	_ = b.ln.Close()
	p.log.Info("listener draining", slog.String("listener", b.name), slog.String("address", b.addr.String()))
	p.draining.Add(1)
	go func() {
		defer p.draining.Done()
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.DrainDuration)
		defer cancel()
		if b.srv != nil {
			if err := b.srv.Shutdown(ctx); err != nil {
				_ = b.srv.Close()
			}
		}
		for {
			b.mu.Lock()
			n := len(b.conns)
			b.mu.Unlock()
			if n == 0 || ctx.Err() != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		b.mu.Lock()
		for c := range b.conns {
			_ = c.Close()
		}
		b.mu.Unlock()
	}()
}

// chanListener is a net.Listener fed by dispatch.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		_ = c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

var _ net.Listener = (*chanListener)(nil)

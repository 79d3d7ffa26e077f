package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// serveTCP proxies one downstream connection to a tcp_proxy destination.
func (p *Proxy) serveTCP(s *snapshot, b *boundListener, conn net.Conn, l *xdsconfig.Listener, tp *xdsconfig.TCPProxy,
	dst netip.AddrPort) {
	rec := record{start: time.Now(), protocol: "tcp", inbound: l.Inbound,
		listener: l.Name, authority: dst.String(), tcpStats: tp.Stats}
	if tc, ok := conn.(*tls.Conn); ok { // mTLS-terminated (listener.go)
		rec.peer = newPeerInfo(tc.ConnectionState())
	}
	defer func() {
		rec.duration = time.Since(rec.start)
		p.alog.log(&rec)
		p.failures.add(&rec)
	}()
	b.mu.Lock()
	b.conns[conn] = struct{}{}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.conns, conn)
		b.mu.Unlock()
		_ = conn.Close()
	}()
	wc := pickWeighted(tp.Clusters).Name
	rec.upstreamCluster = wc
	c := s.clusters[wc]
	if c == nil {
		rec.flags |= flagNC
		return
	}
	rec.services = c.cfg.Services
	target := ""
	if c.cfg.Type == xdsconfig.DiscoveryOriginalDst {
		target = dst.String()
	} else if h := c.pick(nil, "", false); h != nil {
		target, rec.host = h.addr, h
	}
	if target == "" {
		rec.flags |= flagUH
		return
	}
	rec.upstreamHost = target
	p.pipe(conn, nil, c, target, &rec, b, dst)
}

// pipe connects down to target and copies both ways until both sides close.
// dst is the connection's destination as the listener saw it (the original
// destination of a captured connection, the port a CONNECT named): the
// destination.* of tag expressions.
func (p *Proxy) pipe(down net.Conn, downReader io.Reader, c *cluster, target string, rec *record, b *boundListener,
	dst netip.AddrPort) {
	if c.overflow() {
		rec.flags |= flagUO
		return
	}
	c.active.Add(1)
	defer c.active.Add(-1)
	pl := c.pools[nil]
	if rec.host != nil {
		pl = c.poolFor(rec.host)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ConnectTimeout)
	up, err := c.dialConn(ctx, pl, "tcp", target)
	cancel()
	if err != nil {
		rec.flags |= flagUF
		rec.transportFailure = transportFailureReason(err)
		if rec.host != nil {
			c.report(rec.host, 0, true)
		}
		return
	}
	if b != nil {
		b.mu.Lock()
		b.conns[up] = struct{}{}
		b.mu.Unlock()
		defer func() {
			b.mu.Lock()
			delete(b.conns, up)
			b.mu.Unlock()
		}()
	}
	defer up.Close()
	ts := p.metrics.tcpFor(rec, rec.tcpStats, func() map[string]any { return tcpVars(rec, addrPortOf(down.RemoteAddr()), dst) })
	ts.opened.Inc()
	defer ts.closed.Inc()
	if downReader == nil {
		downReader = down
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		n, _ := io.Copy(up, downReader)
		rec.bytesIn = n
		ts.received.Add(float64(n))
		if cw, ok := up.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}()
	n, _ := io.Copy(down, up)
	rec.bytesOut = n
	ts.sent.Add(float64(n))
	if tc, ok := down.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	} else {
		_ = down.Close()
	}
	wg.Wait()
}

// pickWeighted picks one of cs at random, in proportion to its weight.
func pickWeighted(cs []xdsconfig.WeightedCluster) *xdsconfig.WeightedCluster {
	if len(cs) == 1 {
		return &cs[0]
	}
	var total uint32
	for i := range cs {
		total += cs[i].Weight
	}
	n := rand.N(total)
	for i := range cs {
		if n < cs[i].Weight {
			return &cs[i]
		}
		n -= cs[i].Weight
	}
	return &cs[len(cs)-1]
}

// serveConnect handles CONNECT on the explicit proxy: the authority's port
// picks a virtual listener; a TCP chain is tunnelled to its cluster and an
// HTTP chain is served by the proxy's HTTP pipeline inside the tunnel. A
// port no listener takes is decided by the explicit proxy's own routes
// (hcm), as a plain request to an unknown host is (connectUnknown).
func (p *Proxy) serveConnect(w http.ResponseWriter, r *http.Request, s *snapshot, info *connInfo, rec *record,
	hcm *xdsconfig.HTTPConnectionManager) {
	rec.protocol = "tcp"
	host, portStr, err := net.SplitHostPort(r.Host)
	port, perr := strconv.Atoi(portStr)
	if err != nil || perr != nil {
		rec.flags |= flagNR
		rec.code = p.local(w, http.StatusBadRequest, "bad authority")
		return
	}
	var target netip.AddrPort
	if ip, err := netip.ParseAddr(host); err == nil {
		target = netip.AddrPortFrom(ip, uint16(port))
	}
	vl := s.listenerFor(netip.AddrPortFrom(target.Addr(), uint16(port)))
	if !target.IsValid() {
		vl = s.byAddr[netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(port))]
	}
	var fc *xdsconfig.FilterChain
	// A listener with an http_inspector (an undeclared port) picks its
	// chain from the tunnel's first bytes, read once the tunnel is up.
	sniffing := vl != nil && vl.InspectsHTTP(uint16(port))
	if vl != nil && !sniffing {
		fc = vl.ChainFor(uint16(port))
	}
	var tunnel *cluster // set: tunnel to the authority through this cluster
	if fc == nil && !sniffing {
		if tunnel = p.connectUnknown(w, r, s, rec, hcm); tunnel == nil {
			return
		}
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		rec.code = p.local(w, http.StatusMethodNotAllowed, "CONNECT needs HTTP/1.1")
		return
	}
	rec.code = http.StatusOK
	conn, brw, err := hj.Hijack()
	if err != nil {
		rec.flags |= flagDC
		return
	}
	_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\n\r\n")
	var rd *bufio.Reader
	if brw.Reader.Buffered() > 0 {
		rd = brw.Reader
	}
	if sniffing {
		var src io.Reader = conn
		if rd != nil {
			src = rd
		}
		rd = bufio.NewReaderSize(src, maxClientHello)
		in := inspectorsFor(vl, uint16(port))
		in.tls = false // the tunnel carries what the client sends the port; TLS is not inspected there
		hello, ok := sniff(conn, rd, in)
		if ok {
			fc = vl.ChainForConn(uint16(port), "", xdsconfig.TransportRawBuffer, hello.alpn)
		}
		if fc == nil {
			rec.flags |= flagNR
			_ = conn.Close()
			return
		}
	}
	if tunnel != nil {
		defer conn.Close()
		var dr io.Reader
		if rd != nil {
			dr = rd
		}
		rec.upstreamHost = r.Host
		p.pipe(conn, dr, tunnel, r.Host, rec, info.bound, netip.AddrPortFrom(target.Addr(), uint16(port)))
		return
	}
	dst := netip.AddrPortFrom(vl.Address.Addr(), uint16(port))
	if fc.HTTP != nil {
		inner := &connInfo{bound: info.bound, target: vl.Address, dst: dst, src: info.src}
		inner.guard.limit(fc.HTTP) // the tunnel's requests are held to its listener's HCM
		info.bound.cl.push(&taggedConn{Conn: conn, r: rd, info: inner})
		return
	}
	defer conn.Close()
	wc := pickWeighted(fc.TCP.Clusters).Name
	rec.upstreamCluster = wc
	c := s.clusters[wc]
	if c == nil {
		rec.flags |= flagNC
		return
	}
	addr := r.Host
	if c.cfg.Type != xdsconfig.DiscoveryOriginalDst {
		h := c.pick(nil, "", false)
		if h == nil {
			rec.flags |= flagUH
			return
		}
		addr, rec.host = h.addr, h
	}
	rec.upstreamHost = addr
	var dr io.Reader
	if rd != nil {
		dr = rd
	}
	rec.tcpStats = fc.TCP.Stats
	p.pipe(conn, dr, c, addr, rec, info.bound, dst)
}

// connectUnknown decides a CONNECT to a port no virtual listener takes by
// the route of its authority in the explicit proxy's route configuration:
// a route to a dynamic forward proxy cluster (ALLOW_ANY's allow_any)
// returns that cluster, to tunnel to the authority; a direct response
// (REGISTRY_ONLY's block_all: 502) is sent; anything else is 404 NR.
func (p *Proxy) connectUnknown(w http.ResponseWriter, r *http.Request, s *snapshot, rec *record,
	hcm *xdsconfig.HTTPConnectionManager) *cluster {
	var route *xdsconfig.Route
	if hcm != nil {
		if rt := s.routesFor(hcm); rt != nil {
			if vh := rt.virtualHost(r.Host); vh != nil {
				route = matchRoute(vh, r, "/", nil)
			}
		}
	}
	switch {
	case route == nil:
	case route.Direct != nil:
		rec.code = p.local(w, route.Direct.Status, route.Direct.Body)
		return nil
	case route.Action != nil && len(route.Action.Clusters) > 0:
		wc := pickWeighted(route.Action.Clusters).Name
		if c := s.clusters[wc]; c != nil && c.cfg.Type == xdsconfig.DiscoveryDynamicForwardProxy {
			rec.upstreamCluster, rec.services = wc, c.cfg.Services
			return c
		}
	}
	rec.flags |= flagNR
	rec.code = p.local(w, http.StatusNotFound, "")
	return nil
}

// local writes a response generated by the proxy itself outside the HTTP
// filter chain (CONNECT handling).
func (p *Proxy) local(w http.ResponseWriter, code int, body string) int {
	if body != "" {
		w.Header().Set("content-type", "text/plain")
	}
	w.WriteHeader(code)
	if body != "" {
		_, _ = io.WriteString(w, body)
	}
	return code
}

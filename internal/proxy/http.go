package proxy

import (
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// serveHTTP is the HTTP pipeline: resolve the route, run the HCM's filter
// chain (cors, fault, and later rbac, jwt_authn), then the router: direct
// response, redirect or forward.
func (p *Proxy) serveHTTP(w http.ResponseWriter, r *http.Request) {
	x := p.exchanges.Get().(*exchange)
	*x = exchange{p: p, w: w, r: r}
	rec := &x.recBuf
	x.rec = rec
	*rec = record{start: time.Now(), method: r.Method, protocol: r.Proto, authority: r.Host}
	defer func() {
		rec.duration = time.Since(rec.start)
		if rec.path == "" {
			rec.path = r.URL.RequestURI()
		}
		if x.span != nil {
			p.endSpan(x)
		}
		if x.hcm != nil && len(x.hcm.AccessLogs) > 0 {
			p.logAccess(x) // the HCM's access_log (accesslog_xds.go)
		} else {
			p.alog.log(rec)
		}
		var st *xdsconfig.IstioStats
		if x.hcm != nil {
			st = x.hcm.Stats
		}
		p.metrics.observeRequest(rec, st, x)
		p.failures.add(rec)
		reset := x.reset
		*x = exchange{}
		p.exchanges.Put(x)
		if reset {
			panic(http.ErrAbortHandler)
		}
	}()
	s := p.snap.Load()
	info, _ := r.Context().Value(connInfoKey{}).(*connInfo)
	x.snap, x.info = s, info
	if info == nil || s == nil {
		rec.flags |= flagNR
		x.localReply(http.StatusNotFound, "no listener")
		return
	}
	l, fc := info.chainIn(s)
	var hcm *xdsconfig.HTTPConnectionManager
	if l != nil {
		if fc != nil {
			hcm = fc.HTTP
		}
		rec.listener = l.Name
		rec.inbound = l.Inbound
		if fc != nil && (fc.TLS != nil) != (info.peer != nil) {
			// The connection was accepted on a chain of another transport
			// that has since been replaced (a PeerAuthentication turned
			// STRICT, or back): serving it on the new chain would skip its
			// TLS. The connection is closed, as Envoy closes the connections
			// of a chain that went away; the client connects again and
			// meets the new chain.
			rec.details = "filter_chain_transport_changed"
			x.reset = true
			return
		}
	}
	// Mesh identity (tls.go): the peer of an mTLS connection, and the
	// workload metadata its proxy sent, trusted only over mTLS.
	rec.peer = info.peer
	if md := r.Header[headerPeerMetadata]; len(md) > 0 {
		if info.peer != nil && info.peer.principal != "" {
			rec.peerMeta = info.peer.peerMetadataOf(md[0])
		}
		delete(r.Header, headerPeerMetadata)
	}
	if r.ProtoMajor == 1 && !info.guard.admit() {
		// A request whose head the guard refused (h1guard.go): Content-Length
		// with chunked, framing it could not follow, obs-fold or a bare LF
		// (400), a head over the size or header-count limit (431). Envoy
		// answers and closes the connection.
		why := info.guard.stopped()
		rec.flags |= flagDPE
		rec.details = why.details()
		w.Header().Set("Connection", "close")
		x.localReply(why.status(), http.StatusText(why.status()))
		return
	}
	if r.ProtoMajor == 2 && h2HeadersTooLarge(r, hcm) {
		// The HTTP/2 server bounds the header block (MaxHeaderBytes); the
		// HCM's limits are checked here.
		rec.flags |= flagDPE
		rec.details = "http2.headers_too_large"
		x.localReply(http.StatusRequestHeaderFieldsTooLarge, http.StatusText(http.StatusRequestHeaderFieldsTooLarge))
		return
	}
	if r.Method == http.MethodConnect {
		rec.path = r.Host
		p.serveConnect(w, r, s, info, rec, hcm)
		return
	}
	if strings.IndexByte(r.URL.Path, 0) >= 0 {
		// %00 in the path: Istio rejects it always, whatever the
		// normalization options.
		rec.details = "path_normalization_failed"
		x.localReply(http.StatusBadRequest, "Bad Request")
		return
	}
	rid := r.Header.Get("x-request-id")
	if rid == "" {
		rid = newRequestID()
		r.Header["X-Request-Id"] = []string{rid}
	}
	rec.requestID = rid
	if hcm != nil {
		if x.rt = s.routesFor(hcm); x.rt != nil {
			x.vh = x.rt.virtualHost(r.Host)
		}
		x.chain = s.chains[hcm]
		x.hcm = hcm
		if !x.normalizePath(hcm.Paths) { // once, before routing (filters_security.go)
			return
		}
	}
	if x.vh == nil && r.URL.IsAbs() {
		// Explicit proxy: fall back to the virtual listener of the authority's port.
		x.rt, x.vh = s.byAuthorityPort(r.Host)
	}
	path := r.URL.EscapedPath()
	if x.vh != nil {
		x.route = matchRoute(x.vh, r, path, nil)
	}
	if hcm != nil && hcm.Tracing != nil {
		p.startSpan(x, hcm.Tracing)
	}
	for _, f := range x.chain {
		x.decoded++
		if f.decode(x) {
			return
		}
	}
	p.route(x, path)
}

// route is the router filter: it answers direct responses and redirects and
// forwards everything else to the route's cluster.
func (p *Proxy) route(x *exchange, path string) {
	route, vh, rt, rec := x.route, x.vh, x.rt, x.rec
	if vh != nil && vh.RequireTLS && x.scheme() != "https" {
		// require_tls ALL (a Gateway server's httpsRedirect): Envoy's
		// redirect to the same URL over https, before any route.
		x.w.Header().Set("location", "https://"+x.r.Host+x.r.URL.RequestURI())
		x.writeHeader(http.StatusMovedPermanently)
		return
	}
	if route == nil {
		rec.flags |= flagNR
		x.localReply(http.StatusNotFound, "")
		return
	}
	switch {
	case route.Direct != nil:
		editResponse(x.w.Header(), &route.Headers, &vh.Headers, &rt.cfg.Headers)
		x.localReply(route.Direct.Status, route.Direct.Body)
		return
	case route.Redirect != nil:
		editResponse(x.w.Header(), &route.Headers, &vh.Headers, &rt.cfg.Headers)
		x.w.Header().Set("location", redirectURL(route.Redirect, &route.Match, x.r, path, x.scheme()))
		x.writeHeader(route.Redirect.Code)
		return
	}
	a := route.Action
	wc := pickWeighted(a.Clusters)
	rec.upstreamCluster = wc.Name
	c := x.snap.clusters[wc.Name]
	if c != nil {
		rec.services = c.cfg.Services
	}
	if c == nil {
		rec.flags |= flagNC
		code := a.ClusterNotFoundStatus
		if code == 0 {
			code = http.StatusServiceUnavailable
		}
		x.localReply(code, "no cluster")
		return
	}
	x.reset = p.forward(x, wc, c)
}

// byAuthorityPort finds the route table of the virtual listener
// 0.0.0.0:<port of authority> and its virtual host for the authority.
func (s *snapshot) byAuthorityPort(authority string) (*routeTable, *xdsconfig.VirtualHost) {
	port := 80
	if i := strings.LastIndexByte(authority, ':'); i > 0 && !strings.HasSuffix(authority, "]") {
		n, err := strconv.Atoi(authority[i+1:])
		if err != nil {
			return nil, nil
		}
		port = n
	}
	l := s.byAddr[netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(port))]
	if l == nil {
		return nil, nil
	}
	fc := l.ChainFor(uint16(port))
	if fc == nil || fc.HTTP == nil {
		return nil, nil
	}
	rt := s.routesFor(fc.HTTP)
	if rt == nil {
		return nil, nil
	}
	vh := rt.virtualHost(authority)
	if vh == nil {
		return nil, nil
	}
	return rt, vh
}

// h2HeadersTooLarge reports whether an HTTP/2 request's headers pass the
// HCM's limits (as HPACK counts them: name, value and 32 bytes per field).
func h2HeadersTooLarge(r *http.Request, hcm *xdsconfig.HTTPConnectionManager) bool {
	maxBytes, maxCount := headLimits(hcm)
	size := len(r.Method) + len(r.Host) + len(r.RequestURI) + 3*32
	count := 0
	for k, vs := range r.Header {
		count += len(vs)
		for _, v := range vs {
			size += len(k) + len(v) + 32
		}
	}
	return count > maxCount || size > maxBytes
}

func sampled(perMillion uint32) bool {
	return perMillion >= 1_000_000 || rand.N(uint32(1_000_000)) < perMillion
}

func newRequestID() string {
	var b [36]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	hi = hi&^(0xf<<12) | 4<<12         // version 4
	lo = lo&^(0x3<<62) | uint64(2)<<62 // variant
	var raw [16]byte
	for i := 0; i < 8; i++ {
		raw[i] = byte(hi >> (56 - 8*i))
		raw[8+i] = byte(lo >> (56 - 8*i))
	}
	j := 0
	for i, v := range raw {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = hexDigits[v>>4], hexDigits[v&0xf]
		j += 2
	}
	return string(b[:])
}

// hopHeaders are not forwarded.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Trailer"}

func stripHop(h http.Header) {
	if c := h["Connection"]; len(c) > 0 {
		for _, v := range c {
			for _, f := range strings.Split(v, ",") {
				if f = strings.TrimSpace(f); f != "" {
					h.Del(f)
				}
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
	if te := h["Te"]; len(te) > 0 && !(len(te) == 1 && strings.EqualFold(te[0], "trailers")) {
		delete(h, "Te")
	}
}

// Envoy's request headers for the downstream address (canonical form).
const (
	headerXFF             = "X-Forwarded-For"
	headerExternalAddress = "X-Envoy-External-Address"
	headerEnvoyInternal   = "X-Envoy-Internal"
)

// forwardedFor edits the upstream request headers as Envoy does under
// use_remote_address (gateways): the peer's address is appended to
// x-forwarded-for; a peer outside the internal ranges (loopback, RFC 1918,
// IPv6 ULA: Envoy's default internal_address_config) is named in
// x-envoy-external-address, an internal one marked x-envoy-internal: true.
// Whatever the client sent in those two headers is dropped, so neither can
// be forged. Without use_remote_address (sidecars) the headers pass as sent.
func forwardedFor(hdr http.Header, peer netip.Addr) {
	if !peer.IsValid() {
		return
	}
	peer = peer.Unmap()
	ip := peer.String()
	if xff := hdr[headerXFF]; len(xff) > 0 {
		hdr[headerXFF] = []string{strings.Join(xff, ",") + "," + ip}
	} else {
		hdr[headerXFF] = []string{ip}
	}
	delete(hdr, headerExternalAddress)
	delete(hdr, headerEnvoyInternal)
	if peer.IsLoopback() || peer.IsPrivate() {
		hdr[headerEnvoyInternal] = []string{"true"}
	} else {
		hdr[headerExternalAddress] = []string{ip}
	}
}

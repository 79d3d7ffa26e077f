package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// maxRetryBody bounds the request body the router keeps so it can replay it
// on a retry or send it to a mirror: 64 KiB. Envoy's bound is the listener's
// per_connection_buffer_limit_bytes (1 MiB by default); a smaller bound keeps
// a sidecar's memory small (1024 concurrent requests, the default circuit
// breaker, hold at most 64 MiB). The body is streamed upstream while it is
// kept, chunked or not; once it outgrows the bound it keeps streaming and the
// request is no longer retried or mirrored, as Envoy does on buffer overflow.
const maxRetryBody = 64 << 10

// attemptResult classifies one upstream attempt.
type attemptResult struct {
	resp  *http.Response
	flag  flags // UF, UT, UC or DC on error
	err   error
	host  *host
	retry bool
}

// forward sends the request upstream with retries and copies the response.
// It returns true when the downstream stream must be reset.
func (p *Proxy) forward(x *exchange, wc *xdsconfig.WeightedCluster, c *cluster) bool {
	r, rec, route, vh, rt := x.r, x.rec, x.route, x.vh, x.rt
	a := route.Action
	// A shallow copy: the value slices are shared with r.Header and never
	// written in place (edits replace or append to a slice whose capacity
	// the server's parser fixed at its length).
	hdr := make(http.Header, len(r.Header)+4)
	for k, v := range r.Header {
		hdr[k] = v
	}
	upgrade := upgradeType(r)
	stripHop(hdr)
	if upgrade != "" {
		hdr["Connection"] = []string{"Upgrade"}
		hdr["Upgrade"] = []string{upgrade}
	}
	// x-forwarded-proto is the downstream connection's scheme: set when
	// absent, and always at the edge (use_remote_address), as Envoy does.
	if _, ok := hdr["X-Forwarded-Proto"]; !ok || (x.hcm != nil && x.hcm.UseRemoteAddress) {
		hdr["X-Forwarded-Proto"] = []string{x.scheme()}
	}
	if x.hcm != nil && x.hcm.UseRemoteAddress && x.info != nil {
		forwardedFor(hdr, x.info.src.Addr())
	}
	// x-forwarded-client-cert: whatever the client sent is dropped; on an
	// mTLS connection it is set from the verified peer (tls.go).
	delete(hdr, headerXFCC)
	if x.info != nil && x.info.peer != nil && x.info.peer.cert != nil {
		hdr[headerXFCC] = []string{p.xfcc(x.info.peer)}
	}
	editRequest(hdr, &wc.Headers, &route.Headers, &vh.Headers, &rt.cfg.Headers)
	x.injectTrace(hdr)
	path := rewritePath(a, &route.Match, r.URL.EscapedPath())
	authority := r.Host
	if a.HostRewrite != "" {
		authority = a.HostRewrite
	}
	policy := a.Retry
	if upgrade != "" {
		policy = nil // the upgraded stream cannot be replayed
	}
	hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
	var replay *replayBody
	var counted *countingReader
	if hasBody {
		if policy != nil || len(a.Mirrors) > 0 {
			replay = newReplayBody(r.Body, maxRetryBody)
		} else {
			counted = &countingReader{r: r.Body}
		}
	}
	defer func() {
		switch {
		case replay != nil:
			rec.bytesIn = replay.total()
		case counted != nil:
			rec.bytesIn = counted.n
		}
	}()
	ctx := r.Context()
	if a.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.Timeout)
		defer cancel()
	}
	mirrored := false
	mirror := func() {
		if mirrored || len(a.Mirrors) == 0 {
			return
		}
		var body []byte
		if hasBody {
			b, ok := replay.complete()
			if !ok {
				return
			}
			body = b
		}
		mirrored = true
		for _, m := range a.Mirrors {
			if mc := x.snap.clusters[m.Cluster]; mc != nil && sampled(m.PerMillion) {
				p.mirror(mc, r, hdr, path, authority, body)
			}
		}
	}
	if !hasBody {
		mirror()
	}
	key, hasKey, setCookie := hashKey(x, a.Hash)
	downstreamH2 := r.ProtoMajor == 2
	var res attemptResult
	var prev *host
	retrying := false // this request holds a max_retries slot
	defer func() {
		if retrying {
			c.retries.Add(-1)
		}
	}()
	for attempt := 1; ; attempt++ {
		if c.overflow() {
			rec.flags |= flagUO
			x.localReply(http.StatusServiceUnavailable, "upstream connect error or disconnect/reset before headers. reset reason: overflow")
			return false
		}
		h := c.pick(prev, key, hasKey)
		if h == nil && c.cfg.Type == xdsconfig.DiscoveryOriginalDst && x.info != nil && x.info.captured {
			// Transparent capture (netns/pod): an ORIGINAL_DST cluster such as
			// PassthroughCluster connects to where the app was going.
			h = &host{addr: x.info.dst.String(), weight: 1}
		}
		if h == nil && c.cfg.Type == xdsconfig.DiscoveryDynamicForwardProxy {
			// A dynamic forward proxy cluster (the explicit proxy's
			// ALLOW_ANY) connects to the request's authority.
			h = &host{addr: h1addr(authority), weight: 1}
		}
		if h == nil {
			rec.flags |= flagUH
			x.localReply(http.StatusServiceUnavailable, "no healthy upstream")
			return false
		}
		if attempt > 1 {
			hdr["X-Envoy-Attempt-Count"] = []string{strconv.Itoa(attempt)}
		}
		var rd io.ReadCloser = http.NoBody
		switch {
		case replay != nil:
			rd = replay.attempt()
		case counted != nil:
			rd = io.NopCloser(counted)
		}
		res = p.attempt(ctx, r, c, h, hdr, path, authority, rd, policy, downstreamH2)
		if retrying {
			c.retries.Add(-1)
			retrying = false
		}
		rec.upstreamHost, rec.host = h.addr, h
		if hasBody {
			mirror()
		}
		if !res.retry || policy == nil || (hasBody && replay == nil) || (replay != nil && !replay.replayable()) ||
			ctx.Err() != nil {
			break
		}
		if uint32(attempt) > policy.NumRetries {
			if policy.NumRetries > 0 {
				rec.flags |= flagURX
			}
			break
		}
		// A retry holds a slot of the circuit breaker's max_retries (or of
		// its retry_budget, retrybudget.go) from its backoff until its
		// attempt ends, as Envoy's retries are "active".
		// The slot is taken in one step, so concurrent requests cannot all
		// pass the check and overshoot the limit.
		if c.retries.Add(1) > c.retryLimit() {
			c.retries.Add(-1)
			break // retry budget exhausted
		}
		retrying = true
		if res.resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(res.resp.Body, 64<<10))
			res.resp.Body.Close()
		}
		if policy.OtherHosts {
			prev = h
		}
		t := time.NewTimer(backoff(policy, attempt))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		if ctx.Err() != nil {
			if r.Context().Err() != nil {
				rec.flags |= flagDC
				return false
			}
			rec.flags |= flagUT
			x.localReply(http.StatusGatewayTimeout, "upstream request timeout")
			return false
		}
	}
	if res.resp == nil && downstreamBodyBroken(r, replay, counted) {
		// Envoy's codec answers a body that breaks its framing with 400 and
		// closes the connection; the upstream attempt it cut short is no
		// upstream failure.
		rec.flags |= flagDPE
		rec.details = "http1.codec_error"
		if r.ProtoMajor == 2 {
			rec.details = "http2.violation.of.messaging.rule"
		}
		x.w.Header().Set("Connection", "close")
		x.localReply(http.StatusBadRequest, "Bad Request")
		return false
	}
	if res.resp == nil {
		rec.flags |= res.flag
		rec.transportFailure = transportFailureReason(res.err)
		if res.flag == flagUF && rec.transportFailure != "" {
			x.localReply(http.StatusServiceUnavailable, "upstream connect error or disconnect/reset before headers. reset reason: connection failure, transport failure reason: "+rec.transportFailure)
			return false
		}
		switch res.flag {
		case flagDC:
			return false
		case flagUT:
			x.localReply(http.StatusGatewayTimeout, "upstream request timeout")
		case flagUF:
			x.localReply(http.StatusServiceUnavailable, "upstream connect error or disconnect/reset before headers. reset reason: connection failure")
		default:
			x.localReply(http.StatusServiceUnavailable, "upstream connect error or disconnect/reset before headers. reset reason: connection termination")
		}
		return false
	}
	if res.resp.StatusCode == http.StatusSwitchingProtocols && upgrade != "" {
		p.serveUpgrade(x, res.resp)
		return false
	}
	return p.copyResponse(x, res.resp, wc, setCookie)
}

// hashKey builds the ring-hash key from the route's hash policies, in order
// (a terminal policy that produced a value ends the list). For a cookie
// policy with a TTL and no cookie in the request, a cookie is generated: its
// value is the key, and setCookie is the Set-Cookie header for the response.
func hashKey(x *exchange, hps []xdsconfig.HashPolicy) (key string, ok bool, setCookie string) {
	for i := range hps {
		hp := &hps[i]
		var v string
		switch hp.Kind {
		case xdsconfig.HashHeader:
			if vs := x.r.Header.Values(hp.Name); len(vs) > 0 {
				v = strings.Join(vs, ",")
			}
		case xdsconfig.HashCookie:
			if ck, err := x.r.Cookie(hp.Name); err == nil {
				v = ck.Value
			} else if hp.HasCookieTTL {
				v = strconv.FormatUint(rand.Uint64(), 16)
				ck := &http.Cookie{Name: hp.Name, Value: v, Path: hp.CookiePath, HttpOnly: true}
				if hp.CookieTTL > 0 {
					ck.MaxAge = int(hp.CookieTTL / time.Second)
				}
				setCookie = ck.String()
			}
		case xdsconfig.HashSourceIP:
			if x.info != nil && x.info.src.IsValid() {
				v = x.info.src.Addr().String()
			}
		case xdsconfig.HashQueryParameter:
			v = x.r.URL.Query().Get(hp.Name)
		}
		if v == "" {
			continue
		}
		key += v
		ok = true
		if hp.Terminal {
			break
		}
	}
	return key, ok, setCookie
}

type countingReader struct {
	r   io.Reader
	n   int64
	err error // what reading r ended with
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	if err != nil {
		c.err = err
	}
	return n, err
}

// downstreamBodyBroken reports whether reading the downstream request body
// failed on its framing (an invalid chunk size, say), not by the client
// going away (an early EOF, a network error or a cancelled request).
func downstreamBodyBroken(r *http.Request, replay *replayBody, counted *countingReader) bool {
	var err error
	switch {
	case replay != nil:
		err = replay.srcErr()
	case counted != nil:
		err = counted.err
	}
	var ne net.Error
	return err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) &&
		!errors.As(err, &ne) && r.Context().Err() == nil
}

// backoff is Envoy's retry back-off: full jitter, uniformly random in
// (0, min(base*2^(attempt-1), max)].
func backoff(p *xdsconfig.RetryPolicy, attempt int) time.Duration {
	ceil := p.BaseInterval << (attempt - 1)
	if ceil <= 0 || ceil > p.MaxInterval {
		ceil = p.MaxInterval
	}
	return rand.N(ceil) + 1
}

// grpcRetryable maps a grpc-status of a trailers-only response to the
// policy's gRPC retry_on conditions.
func grpcRetryable(on int, status string) bool {
	switch status {
	case "1":
		return on&xdsconfig.RetryCancelled != 0
	case "4":
		return on&xdsconfig.RetryDeadlineExceeded != 0
	case "8":
		return on&xdsconfig.RetryResourceExhausted != 0
	case "13":
		return on&xdsconfig.RetryInternal != 0
	case "14":
		return on&xdsconfig.RetryUnavailable != 0
	}
	return false
}

// attempt makes one upstream try and decides whether it may be retried.
func (p *Proxy) attempt(ctx context.Context, r *http.Request, c *cluster, h *host, hdr http.Header, path, authority string,
	body io.ReadCloser, policy *xdsconfig.RetryPolicy, downstreamH2 bool) attemptResult {
	tryCtx := ctx
	var cancel context.CancelFunc
	if policy != nil && policy.PerTryTimeout > 0 {
		tryCtx, cancel = context.WithTimeout(ctx, policy.PerTryTimeout)
	}
	// Mesh peers (ISTIO_MUTUAL) learn who calls them: Istio's metadata
	// exchange, as a header the receiving proxy strips (tls_peermeta.go).
	if h.tls != nil && h.tls.CertFromIdentity && p.peerMeta != "" {
		hdr[headerPeerMetadata] = []string{p.peerMeta}
	} else {
		delete(hdr, headerPeerMetadata)
	}
	dialHost := h.addr
	if c.cfg.Type == xdsconfig.DiscoveryOriginalDst || c.cfg.Type == xdsconfig.DiscoveryDynamicForwardProxy {
		dialHost = authority
	}
	c.active.Add(1)
	h.active.Add(1)
	h.total.Add(1)
	c.rqTotal.Add(1)
	c.noteStarted()
	var resp *http.Response
	err := errH1Busy
	_, upgrade := hdr["Upgrade"]
	// The lean client takes idempotent requests without a body (it may send
	// them again on another connection when a kept-alive one turns out to
	// be closed); the Transport, which notices closed idle connections as
	// they close, takes the rest.
	if body == http.NoBody && r.Trailer == nil && !upgrade && !c.upstreamH2(downstreamH2) {
		lr := &h1req{method: r.Method, authority: authority, path: path, rawQuery: r.URL.RawQuery, header: hdr,
			addr: h1addr(dialHost)}
		if idempotent(lr) {
			resp, err = c.poolFor(h).lean.roundTrip(tryCtx, lr)
		}
	}
	if err == errH1Busy {
		out := &http.Request{
			Method:        r.Method,
			URL:           upstreamURL(dialHost, path, r.URL.RawQuery),
			Proto:         "HTTP/1.1",
			ProtoMajor:    1,
			ProtoMinor:    1,
			Header:        hdr,
			Body:          body,
			ContentLength: r.ContentLength,
			Host:          authority,
			Trailer:       r.Trailer,
		}
		if body == http.NoBody {
			out.ContentLength = 0
		}
		// max_requests_per_connection 1: no reuse. (Larger limits and
		// max_connection_duration are kept by the lean client only: the
		// Transport does not say which connection a request took.)
		out.Close = c.cfg.Conn.MaxRequests == 1
		if ab, ok := body.(*attemptBody); ok {
			// A replayable body lets Go's HTTP/2 client resend a request
			// the upstream refused (REFUSED_STREAM, GOAWAY): it was not
			// processed. (Without GetBody that error loses its type.)
			out.GetBody = ab.b.getBody
		}
		resp, err = c.transport(h, downstreamH2).RoundTrip(out.WithContext(tryCtx))
	}
	c.active.Add(-1)
	h.active.Add(-1)
	res := attemptResult{host: h}
	if err != nil {
		if cancel != nil {
			cancel()
		}
		var ce *connectError
		switch {
		case r.Context().Err() != nil:
			res.flag = flagDC
		case errors.As(err, &ce):
			res.flag = flagUF
			c.report(h, 0, true)
		case tryCtx.Err() != nil:
			res.flag = flagUT
			c.report(h, 504, false)
		default:
			res.flag = flagUC
			c.report(h, 503, false)
		}
		res.err = err
		if policy != nil {
			on := policy.On
			switch res.flag {
			case flagUF:
				res.retry = on&(xdsconfig.RetryConnectFailure|xdsconfig.Retry5xx|xdsconfig.RetryGatewayError) != 0
			case flagUT:
				res.retry = ctx.Err() == nil && on&(xdsconfig.Retry5xx|xdsconfig.RetryGatewayError|xdsconfig.RetryReset) != 0
			case flagUC:
				res.retry = on&(xdsconfig.Retry5xx|xdsconfig.RetryGatewayError|xdsconfig.RetryReset) != 0 ||
					(on&xdsconfig.RetryRefusedStream != 0 && refusedStream(err))
			}
		}
		return res
	}
	if cancel != nil {
		resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	}
	res.resp = resp
	c.report(h, resp.StatusCode, false)
	if policy != nil {
		code := resp.StatusCode
		on := policy.On
		res.retry = (on&xdsconfig.Retry5xx != 0 && code >= 500) ||
			(on&xdsconfig.RetryGatewayError != 0 && (code == 502 || code == 503 || code == 504)) ||
			(on&xdsconfig.RetryRetriable4xx != 0 && code == 409)
		if on&xdsconfig.RetryRetriableStatusCodes != 0 {
			for _, sc := range policy.StatusCodes {
				if int(sc) == code {
					res.retry = true
				}
			}
		}
		if gs := resp.Header["Grpc-Status"]; len(gs) > 0 && grpcRetryable(on, gs[0]) {
			res.retry = true
		}
	}
	return res
}

// refusedStream reports whether an HTTP/2 upstream reset the stream with
// REFUSED_STREAM. net/http's bundled HTTP/2 error converts to x/net's
// StreamError with errors.As (net/http/h2_error.go).
func refusedStream(err error) bool {
	var se http2.StreamError
	return errors.As(err, &se) && se.Code == http2.ErrCodeRefusedStream
}

// cancelBody ends the per-try context once the body is done.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// copyResponse streams the upstream response (headers, body, trailers) to the
// downstream. It returns true when the body broke mid-stream.
func (p *Proxy) copyResponse(x *exchange, resp *http.Response, wc *xdsconfig.WeightedCluster, setCookie string) bool {
	defer resp.Body.Close()
	rec, w := x.rec, x.w
	dst := w.Header()
	for k, v := range resp.Header {
		dst[k] = v
	}
	if setCookie != "" {
		// After the upstream's own cookies, which must not replace it.
		dst["Set-Cookie"] = append(dst["Set-Cookie"], setCookie)
	}
	stripHop(dst)
	editResponse(dst, &wc.Headers, &x.route.Headers, &x.vh.Headers, &x.rt.cfg.Headers)
	grpc := strings.HasPrefix(resp.Header.Get("Content-Type"), "application/grpc")
	if grpc {
		rec.grpcStatus = resp.Header.Get("Grpc-Status")
	}
	x.writeHeader(resp.StatusCode)
	flusher, _ := w.(http.Flusher)
	stream := resp.ContentLength < 0 || grpc
	bp := p.copyBufs.Get().(*[]byte)
	defer p.copyBufs.Put(bp)
	buf := *bp
	var broke bool
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			rec.bytesOut += int64(m)
			if werr != nil {
				rec.flags |= flagDC
				return false
			}
			if stream && flusher != nil {
				flusher.Flush()
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			switch {
			case x.r.Context().Err() != nil:
				rec.flags |= flagDC
				return false
			case errors.Is(err, context.DeadlineExceeded):
				rec.flags |= flagUT
			default:
				rec.flags |= flagUC
			}
			broke = true
			break
		}
	}
	for k, v := range resp.Trailer {
		dst[http.TrailerPrefix+k] = v
		if grpc && strings.EqualFold(k, "grpc-status") && len(v) > 0 {
			rec.grpcStatus = v[0]
		}
	}
	return broke
}

// mirror sends a copy of the request to a shadow cluster and ignores the
// answer. The authority gets Envoy's "-shadow" suffix (before any port).
func (p *Proxy) mirror(c *cluster, r *http.Request, hdr http.Header, path, authority string, body []byte) {
	h := c.pick(nil, "", false)
	if h == nil || c.overflow() {
		return
	}
	host := authority
	if i := strings.LastIndexByte(host, ':'); i > 0 && !strings.HasSuffix(host, "]") {
		host = host[:i] + "-shadow" + host[i:]
	} else {
		host += "-shadow"
	}
	out, err := http.NewRequest(r.Method, "http://"+h.addr+path, bytes.NewReader(body))
	if err != nil {
		return
	}
	out.Header = hdr.Clone()
	out.Host = host
	out.URL.RawQuery = r.URL.RawQuery
	p.draining.Add(1)
	go func() {
		defer p.draining.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.active.Add(1)
		defer c.active.Add(-1)
		resp, err := c.transport(h, false).RoundTrip(out.WithContext(ctx))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
}

// upstreamURL is the URL of an upstream request whose target is path (as
// escaped) and rawQuery. The Transport writes Opaque as the target as it is,
// except that an Opaque starting with "//" becomes the absolute-form
// "http://..." on HTTP/1.1 and is refused as an HTTP/2 :path, so a path
// that starts with "//" goes in Path and RawPath instead: the target stays
// origin-form and the authority is only ever the request's Host.
func upstreamURL(dialHost, path, rawQuery string) *url.URL {
	if len(path) < 2 || path[0] != '/' || path[1] != '/' {
		return &url.URL{Scheme: "http", Host: dialHost, Opaque: path, RawQuery: rawQuery}
	}
	u := &url.URL{Scheme: "http", Host: dialHost, RawPath: path, RawQuery: rawQuery}
	if p, err := url.PathUnescape(path); err == nil {
		u.Path = p
	} else {
		u.Path, u.RawPath = path, ""
	}
	return u
}

// upgradeType returns the Upgrade protocol of an HTTP/1.1 upgrade request
// (WebSocket), or "".
func upgradeType(r *http.Request) string {
	if r.ProtoMajor != 1 {
		return ""
	}
	// Only websocket is tunnelled (the upgrade_configs Istio sets); any
	// other Upgrade (h2c included) is a hop-by-hop header, stripped, and the
	// request forwarded as a plain one.
	up := r.Header.Get("Upgrade")
	if !strings.EqualFold(up, "websocket") {
		return ""
	}
	for _, v := range r.Header["Connection"] {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), "upgrade") {
				return up
			}
		}
	}
	return ""
}

// serveUpgrade completes an upgrade the upstream accepted (101): it hands
// the 101 to the downstream and copies bytes both ways until either side
// closes.
func (p *Proxy) serveUpgrade(x *exchange, resp *http.Response) {
	rec := x.rec
	up, ok := resp.Body.(io.ReadWriteCloser)
	hj, hok := x.w.(http.Hijacker)
	if !ok || !hok {
		resp.Body.Close()
		rec.flags |= flagUC
		x.localReply(http.StatusBadGateway, "upgrade failed")
		return
	}
	defer up.Close()
	conn, brw, err := hj.Hijack()
	if err != nil {
		rec.flags |= flagDC
		return
	}
	defer conn.Close()
	rec.code = http.StatusSwitchingProtocols
	_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	_ = resp.Header.Write(brw)
	_, _ = brw.WriteString("\r\n")
	if err := brw.Flush(); err != nil {
		rec.flags |= flagDC
		return
	}
	done := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(up, brw.Reader)
		if cw, ok := up.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		done <- n
	}()
	n, _ := io.Copy(conn, up)
	rec.bytesOut += n
	_ = conn.Close()
	rec.bytesIn += <-done
}

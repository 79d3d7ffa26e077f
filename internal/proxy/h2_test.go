package proxy_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// This file attacks a proxy listener with raw HTTP/2 frames: rapid reset
// (CVE-2023-44487) and a CONTINUATION flood (CVE-2023-45288).

// h2Attacker is a raw HTTP/2 client connection.
type h2Attacker struct {
	c      net.Conn
	mu     sync.Mutex // guards fr writes and enc
	fr     *http2.Framer
	buf    bytes.Buffer
	enc    *hpack.Encoder
	goaway atomic.Value // http2.ErrCode of a GOAWAY the server sent
	closed chan struct{}
}

func dialH2(t *testing.T, addr string) *h2Attacker {
	t.Helper()
	c := dialTCP(t, addr)
	a := &h2Attacker{c: c, fr: http2.NewFramer(c, c), closed: make(chan struct{})}
	a.enc = hpack.NewEncoder(&a.buf)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := a.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(a.closed)
		rd := http2.NewFramer(io.Discard, c)
		for {
			f, err := rd.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					a.mu.Lock()
					_ = a.fr.WriteSettingsAck()
					a.mu.Unlock()
				}
			case *http2.GoAwayFrame:
				a.goaway.Store(f.ErrCode)
			}
		}
	}()
	t.Cleanup(func() { c.Close() })
	return a
}

// block encodes a request head for path.
func (a *h2Attacker) block(path string, extra ...hpack.HeaderField) []byte {
	a.buf.Reset()
	for _, f := range append([]hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"},
		{Name: ":authority", Value: "echo.prod"}, {Name: ":path", Value: path}}, extra...) {
		_ = a.enc.WriteField(f)
	}
	return bytes.Clone(a.buf.Bytes())
}

func (a *h2Attacker) goawayText() string {
	if code, ok := a.goaway.Load().(http2.ErrCode); ok {
		return code.String()
	}
	return "none"
}

func (a *h2Attacker) isClosed() bool {
	select {
	case <-a.closed:
		return true
	default:
		return false
	}
}

// blockingBackend holds every request until its client goes away and
// records the most requests it held at once.
type blockingBackend struct {
	addr          string
	inFlight, max atomic.Int64
	served        atomic.Int64
}

func startBlockingBackend(t *testing.T) *blockingBackend {
	t.Helper()
	b := &blockingBackend{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	release := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.served.Add(1)
		if r.URL.Path == "/ok" {
			_, _ = io.WriteString(w, "ok")
			return
		}
		n := b.inFlight.Add(1)
		defer b.inFlight.Add(-1)
		for {
			m := b.max.Load()
			if n <= m || b.max.CompareAndSwap(m, n) {
				break
			}
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { close(release); _ = srv.Close() })
	return b
}

func newH2AttackEnv(t *testing.T, backend string) string {
	t.Helper()
	port := freePort(t)
	newEnv(t, resources(
		[]types.Resource{listenerOf(t, "gateway", "127.0.0.1", port, true, hcmFilter(t, "h2attack"))},
		[]types.Resource{&routev3.RouteConfiguration{Name: "h2attack", VirtualHosts: []*routev3.VirtualHost{
			{Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{routeTo("/", "backend")}}}}},
		[]types.Resource{edsCluster("backend")},
		[]types.Resource{cla("backend", backend)},
	))
	return hostPort(port)
}

// TestH2RapidReset: a client opening streams and resetting each at once
// (CVE-2023-44487) never has more than the server's stream limit (250)
// running: the backend never holds more requests than that, the process's
// goroutines stay bounded, and the proxy keeps serving other clients.
func TestH2RapidReset(t *testing.T) {
	backend := startBlockingBackend(t)
	addr := newH2AttackEnv(t, backend.addr)
	if code, body := getOK(t, addr); code != 200 || body != "ok" {
		t.Fatalf("before the attack: %d %q", code, body)
	}
	baseline := runtime.NumGoroutine()
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if n := int64(runtime.NumGoroutine()); n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	a := dialH2(t, addr)
	// First 400 streams the backend holds: past the stream limit the server
	// refuses or queues them, never runs them.
	const held = 400
	a.mu.Lock()
	for i := range held {
		if err := a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: a.block("/hold"),
			EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
	}
	a.mu.Unlock()
	waitFor(t, "the backend holding 250 requests", func() bool { return backend.inFlight.Load() >= 250 || a.isClosed() })
	a.mu.Lock()
	for i := range held {
		_ = a.fr.WriteRSTStream(uint32(2*i+1), http2.ErrCodeCancel)
	}
	a.mu.Unlock()
	// Then streams reset as soon as they are opened.
	const streams = 5000
	sent := 0
	for i := held; i < held+streams; i++ {
		id := uint32(2*i + 1)
		a.mu.Lock()
		_ = a.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		err := a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: a.block("/hold"),
			EndStream: true, EndHeaders: true})
		if err == nil {
			err = a.fr.WriteRSTStream(id, http2.ErrCodeCancel)
		}
		a.mu.Unlock()
		if err != nil {
			break // the server closed the connection
		}
		sent++
	}
	close(stop)
	<-sampled
	t.Logf("sent %d of %d reset streams; backend held at most %d at once, served %d; goroutines %d -> peak %d; GOAWAY %s, closed %v",
		sent, streams, backend.max.Load(), backend.served.Load(), baseline, peak.Load(), a.goawayText(), a.isClosed())
	if m := backend.max.Load(); m > 250 {
		t.Errorf("backend held %d requests of one connection at once, want at most 250 (the stream limit)", m)
	}
	if grown := peak.Load() - int64(baseline); grown > 4000 {
		t.Errorf("goroutines grew by %d during %d reset streams, want a bound independent of the stream count", grown, sent)
	}
	if code, body := getOK(t, addr); code != 200 || body != "ok" {
		t.Fatalf("after the attack: %d %q, want the proxy still serving", code, body)
	}
}

// TestH2ContinuationFlood: a header block that never ends (HEADERS without
// END_HEADERS, then endless CONTINUATION frames, CVE-2023-45288) makes the
// server close the connection after a bounded amount (about its 1 MiB
// header limit), not read and decode it forever.
func TestH2ContinuationFlood(t *testing.T) {
	backend := startBlockingBackend(t)
	addr := newH2AttackEnv(t, backend.addr)
	a := dialH2(t, addr)
	first := a.block("/flood")
	a.buf.Reset()
	_ = a.enc.WriteField(hpack.HeaderField{Name: "x-flood", Value: strings.Repeat("a", 15<<10), Sensitive: true})
	frag := bytes.Clone(a.buf.Bytes())
	const limit = 64 << 20
	written := 0
	var werr error
	a.mu.Lock()
	werr = a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: first, EndStream: true})
	for werr == nil && written < limit && !a.isClosed() {
		_ = a.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		werr = a.fr.WriteContinuation(1, false, frag)
		written += len(frag)
	}
	a.mu.Unlock()
	select {
	case <-a.closed:
	case <-time.After(10 * time.Second):
		t.Fatalf("connection still open after %d bytes of CONTINUATION (write error %v)", written, werr)
	}
	t.Logf("server closed after %d bytes of CONTINUATION; GOAWAY %s, write error %v", written, a.goawayText(), werr)
	if written >= limit {
		t.Fatalf("server read %d bytes of one header block before closing, want it bounded near its header limit", written)
	}
	if n := backend.served.Load(); n != 0 {
		t.Fatalf("backend served %d requests, want none", n)
	}
}

// getOK sends GET /ok over a fresh HTTP/2 connection.
func getOK(t *testing.T, addr string) (int, string) {
	t.Helper()
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "http://"+addr+"/ok", nil)
	req.Host = "echo.prod"
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, "EOF"
		}
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestH2Malformed: through a proxy listener, a request with a
// connection-specific header field or TE other than trailers is reset with
// PROTOCOL_ERROR (RFC 9113 8.2.2) and never reaches the backend, while the
// connection keeps serving; a SETTINGS frame repeating a setting is
// processed in order (the last value wins), not a reason to hang up.
func TestH2Malformed(t *testing.T) {
	h := newHostileEnv(t)
	c := dialTCP(t, h.plain)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	send := func(stream uint32, path string, extra ...hpack.HeaderField) {
		hb.Reset()
		for _, f := range append([]hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"},
			{Name: ":authority", Value: "echo.prod"}, {Name: ":path", Value: path}}, extra...) {
			_ = enc.WriteField(f)
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: 65535}); err != nil {
		t.Fatal(err)
	}
	malformed := map[uint32]string{
		1: "connection", 3: "keep-alive", 5: "proxy-connection", 7: "transfer-encoding", 9: "upgrade", 11: "te",
	}
	send(1, "/m1", hpack.HeaderField{Name: "connection", Value: "keep-alive"})
	send(3, "/m3", hpack.HeaderField{Name: "keep-alive", Value: "timeout=5"})
	send(5, "/m5", hpack.HeaderField{Name: "proxy-connection", Value: "keep-alive"})
	send(7, "/m7", hpack.HeaderField{Name: "transfer-encoding", Value: "chunked"})
	send(9, "/m9", hpack.HeaderField{Name: "upgrade", Value: "websocket"})
	send(11, "/m11", hpack.HeaderField{Name: "te", Value: "trailers, deflate"})
	send(13, "/good", hpack.HeaderField{Name: "te", Value: "trailers"})

	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	reset := map[uint32]http2.ErrCode{}
	status, ended := "", false
	var body []byte
	for !ended || len(reset) < len(malformed) {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("read frame (resets %v, status %q): %v", reset, status, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v: %s", f.ErrCode, f.DebugData())
		case *http2.RSTStreamFrame:
			reset[f.StreamID] = f.ErrCode
		case *http2.MetaHeadersFrame:
			if f.StreamID != 13 {
				t.Fatalf("stream %d (%s) answered %s, want a reset", f.StreamID, malformed[f.StreamID], f.PseudoValue("status"))
			}
			status, ended = f.PseudoValue("status"), f.StreamEnded()
		case *http2.DataFrame:
			if f.StreamID == 13 {
				body, ended = append(body, f.Data()...), f.StreamEnded()
			}
		}
	}
	for id, name := range malformed {
		if reset[id] != http2.ErrCodeProtocol {
			t.Errorf("stream %d with %s: reset %v, want PROTOCOL_ERROR", id, name, reset[id])
		}
	}
	if status != "200" || !strings.HasPrefix(string(body), "GET /good") {
		t.Errorf("good request answered %s %q", status, body)
	}
	for _, s := range h.h1.requests() {
		if !strings.HasPrefix(s, "GET /good") {
			t.Errorf("backend served %q", s)
		}
	}
}

package proxy

import (
	"bytes"
	"sync/atomic"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// The HTTP/1.1 framing guard. net/http's server frames a request that has
// both Content-Length and Transfer-Encoding: chunked by the chunked coding
// and deletes Content-Length before the handler runs, keeping the
// connection open: a front end that frames by Content-Length then sees the
// proxy run part of its body as a second request (CL.TE smuggling). Envoy
// answers such a request 400 and closes the connection
// (http1.content_length_and_chunked_not_allowed), and so must we, but the
// handler cannot see the two headers any more. So the connection's bytes
// pass through h1guard on their way to the server's parser: it follows the
// framing of each request (head, Content-Length body, chunked body and
// trailers) exactly as strictly as net/http reads it, and counts the request
// heads it checked and found sound. The handler counts the requests it is
// handed; a request beyond the guard's count (a head with both framings, or
// anything the guard could not follow) is answered 400 and the connection
// closed. Being stricter than net/http is safe (the connection's later
// requests are refused); being laxer never happens by construction: every
// deviation from the grammar net/http accepts stops the guard.
//
// Cost: one IndexByte per header line and a few byte compares per line
// start; bodies are skipped by count.

// guardStop says why the guard stopped following a connection.
type guardStop int32

const (
	guardOK             guardStop = iota // following, or stopped for HTTP/2 or CONNECT
	guardCLAndChunked                    // Content-Length with Transfer-Encoding
	guardBadLength                       // malformed or conflicting Content-Length
	guardBadTE                           // Transfer-Encoding other than one "chunked", or on HTTP/1.0
	guardBadFraming                      // anything else the guard cannot follow
	guardHeadTooLarge                    // request line and headers over the byte limit
	guardTooManyHeaders                  // more header lines than the count limit
	guardObsFold                         // a folded header line (obs-fold)
	guardBareLF                          // a line of the head ended by LF without CR
)

// Envoy's limits on a request head (HttpConnectionManager
// max_request_headers_kb, default 60 KiB, which counts the request target
// too; HttpProtocolOptions max_headers_count, default 100). Past either,
// Envoy answers 431.
const (
	defaultMaxHeadBytes = 60 << 10
	defaultMaxHeaders   = 100
)

// status is the HTTP status of the local reply for a stop.
func (s guardStop) status() int {
	if s == guardHeadTooLarge || s == guardTooManyHeaders {
		return 431
	}
	return 400
}

// details is Envoy's response_code_details for the 400.
func (s guardStop) details() string {
	switch s {
	case guardCLAndChunked:
		return "http1.content_length_and_chunked_not_allowed"
	case guardBadLength:
		return "http1.content_length_not_allowed"
	case guardBadTE:
		return "http1.invalid_transfer_encoding"
	case guardHeadTooLarge:
		return "http1.headers_too_large"
	case guardTooManyHeaders:
		return "http1.too_many_headers"
	}
	return "http1.codec_error"
}

// Parser states.
const (
	gsHead      uint8 = iota // request line and header lines
	gsBody                   // n bytes of a Content-Length body
	gsChunkSize              // a chunk-size line
	gsChunkData              // n bytes of chunk data
	gsChunkEnd               // the CRLF after chunk data (n: bytes of it seen)
	gsTrailer                // trailer lines after the last chunk
	gsStopped                // not following any more
)

const (
	// guardLineKeep is how much of a line the guard keeps: enough for the
	// header names it looks for and any sane Content-Length value.
	guardLineKeep = 64
	// guardTailKeep is how much of a line's end the guard keeps: the CR
	// and " HTTP/1.1" of a long request line.
	guardTailKeep = 16
	// guardChunkLineMax bounds a chunk-size line (CRLF excluded). net/http
	// fails lines that do not fit its 4 KiB read buffer; a smaller bound
	// keeps the guard stricter.
	guardChunkLineMax = 1024
	// guardTrailerMax bounds the trailer block. net/http refuses trailers
	// that do not end within its 4 KiB read buffer; a smaller bound keeps
	// the guard stricter than that.
	guardTrailerMax = 1024
	// guardChunkExcessMax is net/http's bound on chunk overhead beyond
	// 16 bytes plus twice the data per chunk (chunk extensions).
	guardChunkExcessMax = 16 << 10
)

// h1guard follows one downstream HTTP/1.x connection. scan runs on the
// goroutine reading the connection; admit on the handler's. Both are
// sequential per connection; verified and stop are the only state they share.
type h1guard struct {
	verified atomic.Int64 // request heads checked and sound
	stop     atomic.Int32 // guardStop, set once when the guard stops
	served   int64        // requests admit saw (handler side)
	// Limits, set before the first scan: the bytes of a request head
	// (request line and header lines, line ends included) and its header
	// lines; 0 means Envoy's defaults.
	maxHead    int
	maxHeaders int

	st uint8
	n  uint64 // bytes left of a body or chunk; CRLF bytes seen in gsChunkEnd
	// The current line: its first bytes, its length and whether it had a CR.
	line    [guardLineKeep]byte
	lineLen int
	tail    [guardTailKeep]byte // the line's last bytes (zeros before a short line)
	// The current request head.
	started bool // the request line was read
	http10  bool
	connect bool
	clSeen  bool
	cl      uint64
	te      int // Transfer-Encoding lines
	chunked bool
	headLen int // bytes of the head so far, line ends included
	headers int // header lines so far
	// The current chunked body.
	excess   int64
	trailers int
}

// admit is called by the handler once per HTTP/1.x request, in order; false
// means the request must be answered 400 and the connection closed, for the
// reason stopped returns.
func (g *h1guard) admit() bool {
	g.served++
	return g.served <= g.verified.Load()
}

// headLimits are hcm's limits on a request head, Envoy's defaults where it
// sets none: the bytes of the head and its number of headers.
func headLimits(hcm *xdsconfig.HTTPConnectionManager) (maxBytes, maxHeaders int) {
	maxBytes, maxHeaders = defaultMaxHeadBytes, defaultMaxHeaders
	if hcm != nil && hcm.MaxRequestHeadersBytes > 0 {
		maxBytes = hcm.MaxRequestHeadersBytes
	}
	if hcm != nil && hcm.MaxHeadersCount > 0 {
		maxHeaders = hcm.MaxHeadersCount
	}
	return maxBytes, maxHeaders
}

// limit sets the guard's limits to those of the HCM serving the
// connection; it must be called before the first scan.
func (g *h1guard) limit(hcm *xdsconfig.HTTPConnectionManager) {
	g.maxHead, g.maxHeaders = headLimits(hcm)
}

func (g *h1guard) headLimit() int {
	if g.maxHead > 0 {
		return g.maxHead
	}
	return defaultMaxHeadBytes
}

func (g *h1guard) headersLimit() int {
	if g.maxHeaders > 0 {
		return g.maxHeaders
	}
	return defaultMaxHeaders
}

// stopped is why the guard stopped.
func (g *h1guard) stopped() guardStop { return guardStop(g.stop.Load()) }

func (g *h1guard) halt(why guardStop) {
	g.st = gsStopped
	g.stop.Store(int32(why))
}

// scan follows the bytes b read from the connection.
func (g *h1guard) scan(b []byte) {
	for len(b) > 0 {
		switch g.st {
		case gsStopped:
			return
		case gsBody, gsChunkData:
			k := uint64(len(b))
			if k > g.n {
				k = g.n
			}
			g.n -= k
			b = b[k:]
			if g.n == 0 {
				if g.st == gsBody {
					g.st = gsHead
				} else {
					g.st = gsChunkEnd
				}
			}
		case gsChunkEnd:
			want := byte('\r')
			if g.n == 1 {
				want = '\n'
			}
			if b[0] != want {
				g.halt(guardBadFraming)
				return
			}
			b = b[1:]
			g.n++
			if g.n == 2 {
				g.n = 0
				g.st = gsChunkSize
			}
		default: // line states
			i := bytes.IndexByte(b, '\n')
			if i >= 0 && g.lineLen == 0 {
				// The whole line is in b (the common case): no copy.
				line := b[:i]
				g.endLine(line[:min(i, guardLineKeep)], line[max(0, i-guardTailKeep):], i)
				b = b[i+1:]
				continue
			}
			seg := b
			if i >= 0 {
				seg = b[:i]
			}
			g.addLine(seg)
			if i < 0 {
				switch {
				case g.st == gsChunkSize && g.lineLen > guardChunkLineMax+1:
					g.halt(guardBadFraming)
				case g.st == gsHead && g.headLen+g.lineLen > g.headLimit():
					g.halt(guardHeadTooLarge) // a line too long to ever fit
				}
				return
			}
			b = b[i+1:]
			g.endLine(g.line[:min(g.lineLen, guardLineKeep)], g.tail[:], g.lineLen)
			g.lineLen, g.tail = 0, [guardTailKeep]byte{}
		}
	}
}

// addLine appends a piece of the current line (without the LF).
func (g *h1guard) addLine(seg []byte) {
	if g.lineLen < guardLineKeep {
		copy(g.line[g.lineLen:], seg)
	}
	if len(seg) >= guardTailKeep {
		copy(g.tail[:], seg[len(seg)-guardTailKeep:])
	} else if len(seg) > 0 {
		copy(g.tail[:], g.tail[len(seg):])
		copy(g.tail[guardTailKeep-len(seg):], seg)
	}
	g.lineLen += len(seg)
}

// endLine handles a complete line of n bytes before the LF: kept are its
// first bytes (up to guardLineKeep), tail its last (up to guardTailKeep).
func (g *h1guard) endLine(kept, tail []byte, n int) {
	cr := n > 0 && tail[len(tail)-1] == '\r'
	switch g.st {
	case gsHead:
		// net/http accepts a bare LF ending a line of the head; RFC 9112
		// section 2.2 allows either, and the proxy refuses it (400): a
		// peer that frames by CRLF only would read the head differently.
		// Empty lines before the request line are skipped either way.
		if !cr {
			if g.started || n > 0 {
				g.halt(guardBareLF)
			}
			return
		}
		n--
		kept = kept[:min(n, len(kept))]
		tail = tail[:len(tail)-1]
		if g.started || n > 0 {
			g.headLen += n + 2
			if g.headLen > g.headLimit() {
				g.halt(guardHeadTooLarge)
				return
			}
		}
		g.headLine(kept, tail, n)
	case gsChunkSize:
		g.chunkLine(kept, cr, n)
	case gsTrailer:
		// Chunked bodies need CRLF everywhere; net/http reads trailers as
		// headers, up to a blank line that must be a CRLF CRLF.
		if !cr || bytes.IndexByte(kept[:min(n-1, len(kept))], '\r') >= 0 {
			g.halt(guardBadFraming)
			return
		}
		g.trailers += n + 1
		if g.trailers > guardTrailerMax {
			g.halt(guardBadFraming)
			return
		}
		if n == 1 {
			g.st = gsHead
		}
	}
}

// headLine handles the request line or a header line of n bytes (CRLF
// removed), of which kept are the first and tail ends the line.
func (g *h1guard) headLine(kept, tail []byte, n int) {
	if !g.started {
		if n == 0 {
			return // empty lines before the request line
		}
		g.requestLine(kept, tail, n)
		return
	}
	if n == 0 {
		g.endHead()
		return
	}
	switch kept[0] {
	case ' ', '\t':
		// obs-fold: continues the previous header's value. RFC 9112
		// section 5.2 lets a server refuse it with 400 or replace it with
		// SP; the proxy refuses it (net/http would fold it).
		g.halt(guardObsFold)
		return
	}
	g.headers++
	if g.headers > g.headersLimit() {
		g.halt(guardTooManyHeaders)
		return
	}
	switch kept[0] {
	case 'c', 'C', 't', 'T':
	default:
		return // neither header; a line net/http refuses closes the connection
	}
	colon := bytes.IndexByte(kept, ':')
	if colon < 0 {
		if n <= len(kept) {
			g.halt(guardBadFraming) // not a header line (net/http refuses it too)
		}
		return // a name longer than either header name
	}
	name := kept[:colon]
	switch {
	case len(name) == len("content-length") && asciiEqualFold(name, "content-length"):
		if n > len(kept) {
			g.halt(guardBadLength)
			return
		}
		v, ok := parseDecimal(trimOWS(kept[colon+1:]))
		if !ok || (g.clSeen && v != g.cl) {
			g.halt(guardBadLength)
			return
		}
		g.clSeen, g.cl = true, v
	case len(name) == len("transfer-encoding") && asciiEqualFold(name, "transfer-encoding"):
		g.te++
		g.chunked = n <= len(kept) && asciiEqualFold(trimOWS(kept[colon+1:]), "chunked")
	}
}

// requestLine starts a request head: METHOD SP target SP HTTP/1.x.
func (g *h1guard) requestLine(kept, tail []byte, n int) {
	if n == len("PRI * HTTP/2.0") && string(kept) == "PRI * HTTP/2.0" {
		g.halt(guardOK) // the HTTP/2 preface: the server hands the connection to HTTP/2
		return
	}
	switch {
	case n > len(" HTTP/1.1") && bytes.HasSuffix(tail, []byte(" HTTP/1.1")):
	case n > len(" HTTP/1.0") && bytes.HasSuffix(tail, []byte(" HTTP/1.0")):
		g.http10 = true
	default:
		g.halt(guardBadFraming)
		return
	}
	g.started = true
	g.connect = bytes.HasPrefix(kept, []byte("CONNECT "))
}

// endHead decides the framing of the request whose head just ended.
func (g *h1guard) endHead() {
	switch {
	case g.te > 0 && g.clSeen:
		g.halt(guardCLAndChunked)
		return
	case g.te > 0 && (g.te > 1 || !g.chunked || g.http10):
		g.halt(guardBadTE)
		return
	}
	g.verified.Add(1)
	chunked, cl, connect := g.te > 0, g.cl, g.connect
	g.started, g.http10, g.connect, g.clSeen, g.cl, g.te, g.chunked = false, false, false, false, 0, 0, false
	g.headLen, g.headers = 0, 0
	switch {
	case connect:
		// A tunnel (or, refused, a connection the guard no longer vouches for).
		g.halt(guardBadFraming)
	case chunked:
		g.st, g.excess, g.trailers = gsChunkSize, 0, 0
	case cl > 0:
		g.st, g.n = gsBody, cl
	}
}

// chunkLine handles a chunk-size line of n bytes before the LF: 1-16 hex
// digits, then a chunk extension after ";" or trailing blanks, then CRLF
// (net/http's chunked reader, internal/chunked.go).
func (g *h1guard) chunkLine(kept []byte, cr bool, n int) {
	if !cr || n-1 >= guardChunkLineMax {
		g.halt(guardBadFraming)
		return
	}
	n-- // the CR
	if i := bytes.IndexByte(kept[:min(n, len(kept))], '\r'); i >= 0 {
		g.halt(guardBadFraming)
		return
	}
	var size uint64
	digits := 0
	i := 0
	for ; i < min(n, len(kept)); i++ {
		v, ok := hexValue(kept[i])
		if !ok {
			break
		}
		digits++
		size = size<<4 | uint64(v)
	}
	if digits == 0 || digits > 16 {
		g.halt(guardBadFraming)
		return
	}
	switch {
	case i == n:
	case kept[i] == ';':
		if n > len(kept) {
			// A long extension: its bytes past the kept ones were not
			// checked for CR.
			g.halt(guardBadFraming)
			return
		}
	default:
		for ; i < n && i < len(kept); i++ {
			if c := kept[i]; c != ' ' && c != '\t' {
				g.halt(guardBadFraming)
				return
			}
		}
		if n > len(kept) {
			g.halt(guardBadFraming)
			return
		}
	}
	// net/http's bound on chunk overhead (chunk extensions).
	g.excess += int64(n) + 2 - 16 - 2*int64(min(size, 1<<40))
	g.excess = max(g.excess, 0)
	if g.excess > guardChunkExcessMax {
		g.halt(guardBadFraming)
		return
	}
	if size == 0 {
		g.st = gsTrailer
		return
	}
	g.st, g.n = gsChunkData, size
}

func hexValue(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// parseDecimal parses a Content-Length value as net/http does: digits only,
// below 2^63.
func parseDecimal(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if v > (1<<63-1-uint64(c-'0'))/10 {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// asciiEqualFold compares b with the lower-case ASCII s, ignoring case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

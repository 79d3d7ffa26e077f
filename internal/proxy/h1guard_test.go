package proxy

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
)

// guardOf runs input through a fresh guard, whole and one byte at a time;
// both must agree.
func guardOf(t *testing.T, input string) (verified int64, why guardStop) {
	t.Helper()
	var whole, bytewise h1guard
	whole.scan([]byte(input))
	for i := 0; i < len(input); i++ {
		bytewise.scan([]byte{input[i]})
	}
	if whole.verified.Load() != bytewise.verified.Load() || whole.stopped() != bytewise.stopped() {
		t.Fatalf("whole: %d heads, stop %d; byte by byte: %d heads, stop %d", whole.verified.Load(), whole.stopped(),
			bytewise.verified.Load(), bytewise.stopped())
	}
	return whole.verified.Load(), whole.stopped()
}

func TestH1Guard(t *testing.T) {
	long := "/" + strings.Repeat("a", 200)
	cases := []struct {
		name     string
		input    string
		verified int64
		stop     guardStop
	}{
		{"one GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1, guardOK},
		{"keep-alive GETs", "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n", 2, guardOK},
		{"empty lines before the request line", "\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 1, guardOK},
		{"100 headers", "GET / HTTP/1.1\r\n" + strings.Repeat("X: 1\r\n", 100) + "\r\n", 1, guardOK},
		{"a head of 60 KiB", "GET / HTTP/1.1\r\nX: " + strings.Repeat("v", 60<<10-len("GET / HTTP/1.1\r\nX: \r\n\r\n")) + "\r\n\r\n", 1, guardOK},
		{"long target", "GET " + long + " HTTP/1.1\r\nHost: a\r\n\r\n", 1, guardOK},
		{"HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", 1, guardOK},
		{"content-length body skipped", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 30\r\n\r\n" +
			"GET /smuggled HTTP/1.1\r\n\r\n....GET / HTTP/1.1\r\nHost: a\r\n\r\n", 2, guardOK},
		{"equal duplicate content-length", "POST / HTTP/1.1\r\nContent-Length: 2\r\ncontent-length:  2 \r\n\r\nok", 1, guardOK},
		{"chunked body skipped", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"5;ext=1\r\nhello\r\n1a  \r\nGET /x HTTP/1.1\r\n\r\n.......\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 2, guardOK},
		{"chunked with trailers", "POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n\r\n" +
			"GET / HTTP/1.1\r\n\r\n", 2, guardOK},
		{"CRLF after a POST body", "POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nok\r\nGET / HTTP/1.1\r\n\r\n", 2, guardOK},
		{"head split across reads is still one head", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("v", 5000) + "\r\n\r\n", 1, guardOK},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00", 0, guardOK},
		{"CONNECT ends following", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\nGET / HTTP/1.1\r\n\r\n", 1, guardBadFraming},

		{"content-length and chunked", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, guardCLAndChunked},
		{"chunked then content-length", "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\nCONTENT-LENGTH: 4\r\n\r\n", 0, guardCLAndChunked},
		{"second request smuggles", "GET / HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", 1, guardCLAndChunked},
		{"differing content-lengths", "POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n", 0, guardBadLength},
		{"content-length list", "POST / HTTP/1.1\r\nContent-Length: 4, 4\r\n\r\n", 0, guardBadLength},
		{"signed content-length", "POST / HTTP/1.1\r\nContent-Length: +4\r\n\r\n", 0, guardBadLength},
		{"empty content-length", "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", 0, guardBadLength},
		{"folded content-length", "POST / HTTP/1.1\r\nContent-Length: 4\r\n 5\r\n\r\n", 0, guardObsFold},
		{"folded header", "GET / HTTP/1.1\r\nX-A: 1\r\n\t2\r\n\r\n", 0, guardObsFold},
		{"bare LF heads", "GET / HTTP/1.1\nHost: a\n\nGET / HTTP/1.1\nHost: a\n\n", 0, guardBareLF},
		{"bare LF ending the head", "GET / HTTP/1.1\r\nHost: a\r\n\n", 0, guardBareLF},
		{"101 headers", "GET / HTTP/1.1\r\n" + strings.Repeat("X: 1\r\n", 101) + "\r\n", 0, guardTooManyHeaders},
		{"a head of 60 KiB and 1 byte", "GET / HTTP/1.1\r\nX: " + strings.Repeat("v", 60<<10+1-len("GET / HTTP/1.1\r\nX: \r\n\r\n")) + "\r\n\r\n", 0, guardHeadTooLarge},
		{"a target of 61 KiB", "GET /" + strings.Repeat("a", 61<<10) + " HTTP/1.1\r\n\r\n", 0, guardHeadTooLarge},
		{"101 headers after a good request", "GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n" + strings.Repeat("X: 1\r\n", 101) + "\r\n", 1, guardTooManyHeaders},
		{"two transfer-encodings", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 0, guardBadTE},
		{"gzip, chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 0, guardBadTE},
		{"chunked on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 0, guardBadTE},
		{"chunk size with bare LF", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n", 1, guardBadFraming},
		{"chunk data not followed by CRLF", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n", 1, guardBadFraming},
		{"chunk size not hex", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nok\r\n", 1, guardBadFraming},
		{"blank before chunk extension", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2 ;x\r\nok\r\n", 1, guardBadFraming},
		{"chunk size too long", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat("0", 17) + "1\r\nx\r\n", 1, guardBadFraming},
		{"unknown version", "GET / HTTP/1.2\r\n\r\n", 0, guardBadFraming},
		{"content-length without colon", "GET / HTTP/1.1\r\ncontent-length 5\r\n\r\n", 0, guardBadFraming},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, why := guardOf(t, tc.input)
			if v != tc.verified || why != tc.stop {
				t.Errorf("verified %d heads, stop %d (%s); want %d, stop %d", v, why, why.details(), tc.verified, tc.stop)
			}
		})
	}
}

func TestH1GuardAdmit(t *testing.T) {
	var g h1guard
	g.scan([]byte("GET / HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"))
	if !g.admit() {
		t.Error("first request refused")
	}
	if g.admit() {
		t.Error("second request (CL and chunked) admitted")
	}
	if got := g.stopped().details(); got != "http1.content_length_and_chunked_not_allowed" {
		t.Errorf("details %q", got)
	}
}

// FuzzH1Guard checks the guard never vouches for a head net/http frames
// differently: when net/http accepts a head the guard verified and the guard
// went on to a next head, net/http reads the body without error and ends it
// exactly where the guard did. (A head net/http refuses closes the
// connection, so the guard need not refuse it too.)
func FuzzH1Guard(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x\r\nabc\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.1\nHost: a\n\nGET / HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.1\r\nX-A: 1\r\n 2\r\n\r\n",
		"GET / HTTP/1.1\r\n" + strings.Repeat("X: 1\r\n", 101) + "\r\nGET / HTTP/1.1\r\n\r\n",
		"\r\nGET /" + strings.Repeat("a", 100) + " HTTP/1.1\r\nHost: a\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		var g h1guard
		type head struct{ start, end int } // the request line's offset; the body's end (-1: not reached)
		var heads []head
		lineStart := 0
		for i := 0; i < len(input); i++ {
			waiting := g.st == gsHead && !g.started && g.lineLen == 0
			if waiting {
				lineStart = i
			}
			before := g.verified.Load()
			g.scan([]byte{input[i]})
			if g.verified.Load() > before {
				heads = append(heads, head{start: lineStart, end: -1})
			}
			if n := len(heads); n > 0 && heads[n-1].end < 0 && g.st == gsHead && !g.started && g.lineLen == 0 {
				heads[n-1].end = i + 1
			}
		}
		for k := 0; k+1 < len(heads); k++ {
			h := heads[k]
			rd := strings.NewReader(input[h.start:])
			br := bufio.NewReader(rd)
			req, err := http.ReadRequest(br)
			if err != nil {
				return // net/http refuses the head and closes the connection
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				t.Fatalf("head %d at %d: the guard followed its body to a next head, net/http failed reading it: %v", k+1, h.start, err)
			}
			if consumed := len(input[h.start:]) - rd.Len() - br.Buffered(); consumed != h.end-h.start {
				t.Fatalf("head %d at %d: net/http read %d bytes of the request, the guard %d", k+1, h.start, consumed, h.end-h.start)
			}
		}
	})
}

var benchHead = []byte("GET /api/v1/items?limit=10 HTTP/1.1\r\nHost: echo.prod.svc.cluster.local:8080\r\n" +
	"User-Agent: Go-http-client/1.1\r\nAccept: */*\r\nAccept-Encoding: gzip\r\nX-Request-Id: 4b8c7a52-6d0e-4f7a-9d3a-1b2c3d4e5f60\r\n" +
	"Traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n")

// BenchmarkH1Guard is the guard's cost for one typical request head.
func BenchmarkH1Guard(b *testing.B) {
	var g h1guard
	b.SetBytes(int64(len(benchHead)))
	b.ReportAllocs()
	for b.Loop() {
		g.scan(benchHead)
	}
	if g.verified.Load() == 0 || g.stopped() != guardOK {
		b.Fatal("guard stopped")
	}
}

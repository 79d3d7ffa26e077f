package proxy

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// TestSniffTimeout: the inspector decides plaintext on one non-TLS byte
// without waiting for more; a silent client (a server-first protocol) is
// plaintext after the timeout when the listener continues on timeout, and
// refused otherwise.
func TestSniffTimeout(t *testing.T) {
	pair := func(t *testing.T) (client, server net.Conn) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		client, err = net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		server, err = ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = client.Close(); _ = server.Close() })
		return client, server
	}
	t.Run("one plaintext byte decides", func(t *testing.T) {
		c, s := pair(t)
		if _, err := c.Write([]byte("G")); err != nil {
			t.Fatal(err)
		}
		h, ok := sniff(s, bufio.NewReader(s), inspectors{tls: true}) // no timeout: would block if it waited for 5 bytes
		if !ok || h.transport != xdsconfig.TransportRawBuffer {
			t.Fatalf("got %+v ok=%v, want raw_buffer", h, ok)
		}
	})
	t.Run("silent client, continue on timeout", func(t *testing.T) {
		_, s := pair(t)
		h, ok := sniff(s, bufio.NewReader(s), inspectors{tls: true, timeout: 20 * time.Millisecond, goOn: true})
		if !ok || h.transport != xdsconfig.TransportRawBuffer {
			t.Fatalf("got %+v ok=%v, want raw_buffer", h, ok)
		}
		if err := s.SetReadDeadline(time.Time{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("http_inspector: request line in pieces", func(t *testing.T) {
		c, s := pair(t)
		go func() {
			for _, piece := range []string{"GE", "T /index.html HT", "TP/1.1\r", "\nHost: a\r\n\r\n"} {
				if _, err := c.Write([]byte(piece)); err != nil {
					return
				}
				time.Sleep(5 * time.Millisecond) // separate segments
			}
		}()
		br := bufio.NewReader(s)
		h, ok := sniff(s, br, inspectors{tls: true, http: true}) // no timeout: decided by the bytes alone
		if !ok || h.transport != xdsconfig.TransportRawBuffer || len(h.alpn) != 1 || h.alpn[0] != "http/1.1" {
			t.Fatalf("got %+v ok=%v, want raw_buffer http/1.1", h, ok)
		}
		line, err := br.ReadString('\n')
		if err != nil || line != "GET /index.html HTTP/1.1\r\n" {
			t.Fatalf("bytes after inspection: %q, %v; want the request line unconsumed", line, err)
		}
	})
	t.Run("http_inspector: silent client goes on as TCP", func(t *testing.T) {
		_, s := pair(t)
		h, ok := sniff(s, bufio.NewReader(s), inspectors{tls: true, http: true, timeout: 20 * time.Millisecond, goOn: true})
		if !ok || h.transport != xdsconfig.TransportRawBuffer || len(h.alpn) != 0 {
			t.Fatalf("got %+v ok=%v, want raw_buffer without an application protocol", h, ok)
		}
	})
	t.Run("http_inspector: a partial request line at the timeout goes on as TCP", func(t *testing.T) {
		c, s := pair(t)
		if _, err := c.Write([]byte("GET /slow")); err != nil {
			t.Fatal(err)
		}
		h, ok := sniff(s, bufio.NewReader(s), inspectors{http: true, timeout: 20 * time.Millisecond, goOn: true})
		if !ok || len(h.alpn) != 0 {
			t.Fatalf("got %+v ok=%v, want no application protocol", h, ok)
		}
	})
	t.Run("no inspector reads nothing", func(t *testing.T) {
		_, s := pair(t)
		h, ok := sniff(s, bufio.NewReader(s), inspectors{}) // would block on a silent client if it read
		if !ok || h.transport != xdsconfig.TransportRawBuffer {
			t.Fatalf("got %+v ok=%v", h, ok)
		}
	})
	t.Run("silent client, close on timeout", func(t *testing.T) {
		_, s := pair(t)
		if _, ok := sniff(s, bufio.NewReader(s), inspectors{tls: true, timeout: 20 * time.Millisecond}); ok {
			t.Fatal("ok after the timeout without continue_on_listener_filters_timeout")
		}
	})
}

// TestHTTPProtocol: the http_inspector's decision on a connection's first
// bytes, and when it needs more.
func TestHTTPProtocol(t *testing.T) {
	for _, tc := range []struct {
		name, data, proto string
		done              bool
	}{
		{"HTTP/1.1 request line", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "http/1.1", true},
		{"HTTP/1.0 request line", "POST /form HTTP/1.0\r\n", "http/1.0", true},
		{"absolute URI", "GET http://a.example/x?y=1 HTTP/1.1\n", "http/1.1", true},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "h2c", true},
		{"HTTP/2 preface start", "PRI * HT", "", false},
		{"method prefix", "OPTI", "", false},
		{"target coming", "GET /a/b", "", false},
		{"version coming", "GET /a HTTP/1.", "", false},
		{"line end coming", "GET /a HTTP/1.1", "", false},
		{"unknown method", "FOO / HTTP/1.1\r\n", "", true},
		{"not a method prefix", "FO", "", true},
		{"binary (PostgreSQL startup)", "\x00\x00\x00\x08\x04\xd2\x16\x2f", "", true},
		{"RESP (Redis)", "*1\r\n$4\r\nPING\r\n", "", true},
		{"HTTP/0.9", "GET /\r\n", "", true},
		{"HTTP/2 in a request line", "GET / HTTP/2.0\r\n", "", true},
		{"control character in the target", "GET /a\x01b HTTP/1.1\r\n", "", true},
		{"lower-case method", "get / HTTP/1.1\r\n", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proto, done := httpProtocol([]byte(tc.data))
			if proto != tc.proto || done != tc.done {
				t.Fatalf("httpProtocol(%q) = %q, %v; want %q, %v", tc.data, proto, done, tc.proto, tc.done)
			}
		})
	}
}

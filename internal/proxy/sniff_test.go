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
		h, ok := sniff(s, bufio.NewReader(s), 0, false) // no timeout: would block if it waited for 5 bytes
		if !ok || h.transport != xdsconfig.TransportRawBuffer {
			t.Fatalf("got %+v ok=%v, want raw_buffer", h, ok)
		}
	})
	t.Run("silent client, continue on timeout", func(t *testing.T) {
		_, s := pair(t)
		h, ok := sniff(s, bufio.NewReader(s), 20*time.Millisecond, true)
		if !ok || h.transport != xdsconfig.TransportRawBuffer {
			t.Fatalf("got %+v ok=%v, want raw_buffer", h, ok)
		}
		if err := s.SetReadDeadline(time.Time{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("silent client, close on timeout", func(t *testing.T) {
		_, s := pair(t)
		if _, ok := sniff(s, bufio.NewReader(s), 20*time.Millisecond, false); ok {
			t.Fatal("ok after the timeout without continue_on_listener_filters_timeout")
		}
	})
}

package proxy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"net"
	"time"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// maxClientHello is the largest TLS record the inspector reads: a record
// header and 2^14 bytes of payload.
const maxClientHello = 5 + 1<<14

// clientHello is what the tls_inspector learns from a connection's first bytes.
type clientHello struct {
	// transport is xdsconfig.TransportTLS or xdsconfig.TransportRawBuffer.
	transport string
	sni       string
	alpn      []string
}

// peekedConn reads through the buffer the inspector peeked into, so the
// bytes it looked at are not lost.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// inspectors are the listener filters that read a connection's first
// bytes, as they apply to one connection.
type inspectors struct {
	// tls: envoy.filters.listener.tls_inspector (or a TLS chain without it).
	tls bool
	// http: envoy.filters.listener.http_inspector.
	http bool
	// timeout is listener_filters_timeout (0: as long as the client takes);
	// goOn is continue_on_listener_filters_timeout.
	timeout time.Duration
	goOn    bool
}

// inspectorsFor are l's inspectors for a connection to destination port port.
func inspectorsFor(l *xdsconfig.Listener, port uint16) inspectors {
	return inspectors{tls: l.InspectsTLS(port), http: l.InspectsHTTP(port), timeout: l.InspectTimeout, goOn: l.ContinueOnInspectTimeout}
}

// sniff runs the inspectors on conn, peeking (without consuming) through
// br. The tls_inspector tells a TLS handshake record (0x16 0x03 ...)
// holding a ClientHello, with its SNI and ALPN, from anything else
// (raw_buffer), decided on the first byte as Envoy does. The
// http_inspector then reads a plaintext connection's request line: its
// application protocol is "http/1.0", "http/1.1" or "h2c" (sniffHTTP), or
// none. Both together wait at most timeout for the client's bytes; a
// client that has not sent enough by then (a server-first protocol sends
// nothing) goes on as raw_buffer without an application protocol when goOn
// is set (Istio sets continue_on_listener_filters_timeout), else ok is
// false and the caller closes the connection, as Envoy does.
func sniff(conn net.Conn, br *bufio.Reader, in inspectors) (h clientHello, ok bool) {
	plain := clientHello{transport: xdsconfig.TransportRawBuffer}
	if !in.tls && !in.http {
		return plain, true
	}
	if in.timeout > 0 {
		_ = conn.SetReadDeadline(time.Now().Add(in.timeout))
		defer func() { _ = conn.SetReadDeadline(time.Time{}) }()
	}
	timedOut := func(err error) bool {
		var ne net.Error
		return errors.As(err, &ne) && ne.Timeout()
	}
	if in.tls {
		h, err := sniffTLS(br)
		switch {
		case err != nil && timedOut(err):
			return plain, in.goOn
		case err != nil:
			return plain, true // closed or failed: the chain sees it
		case h.transport == xdsconfig.TransportTLS:
			return h, true
		}
	}
	if !in.http {
		return plain, true
	}
	proto, err := sniffHTTP(br)
	switch {
	case err != nil && timedOut(err):
		return plain, in.goOn
	case proto != "":
		plain.alpn = []string{proto}
	}
	return plain, true
}

// sniffTLS is the tls_inspector's part of sniff.
func sniffTLS(br *bufio.Reader) (clientHello, error) {
	plain := clientHello{transport: xdsconfig.TransportRawBuffer}
	first, err := br.Peek(1)
	if err != nil {
		return plain, err
	}
	if first[0] != 0x16 { // not a TLS handshake record: decided on one byte, as Envoy
		return plain, nil
	}
	hdr, err := br.Peek(5)
	if err != nil || hdr[1] != 0x03 {
		return plain, nil
	}
	n := int(binary.BigEndian.Uint16(hdr[3:5]))
	if n == 0 || 5+n > maxClientHello {
		return clientHello{transport: xdsconfig.TransportTLS}, nil
	}
	rec, err := br.Peek(5 + n)
	if err != nil {
		return clientHello{transport: xdsconfig.TransportTLS}, nil
	}
	h := parseClientHello(rec[5:])
	h.transport = xdsconfig.TransportTLS
	return h, nil
}

// parseClientHello reads the SNI and ALPN extensions of a ClientHello
// handshake message (RFC 8446 4.1.2); a malformed one yields what was read.
func parseClientHello(b []byte) clientHello {
	var h clientHello
	if len(b) < 4 || b[0] != 1 { // handshake type client_hello
		return h
	}
	b = b[4:]
	if len(b) < 34 {
		return h
	}
	b = b[34:] // legacy_version, random
	skip := func(lenBytes int) bool {
		if len(b) < lenBytes {
			return false
		}
		n := 0
		for i := 0; i < lenBytes; i++ {
			n = n<<8 | int(b[i])
		}
		if len(b) < lenBytes+n {
			return false
		}
		b = b[lenBytes+n:]
		return true
	}
	if !skip(1) || !skip(2) || !skip(1) { // session id, cipher suites, compression
		return h
	}
	if len(b) < 2 {
		return h
	}
	ext := b[2:]
	if n := int(binary.BigEndian.Uint16(b)); n < len(ext) {
		ext = ext[:n]
	}
	for len(ext) >= 4 {
		typ, n := binary.BigEndian.Uint16(ext), int(binary.BigEndian.Uint16(ext[2:]))
		if len(ext) < 4+n {
			return h
		}
		data := ext[4 : 4+n]
		ext = ext[4+n:]
		switch typ {
		case 0: // server_name
			if len(data) < 5 || data[2] != 0 {
				continue
			}
			l := int(binary.BigEndian.Uint16(data[3:]))
			if len(data) >= 5+l {
				h.sni = string(data[5 : 5+l])
			}
		case 16: // application_layer_protocol_negotiation
			if len(data) < 2 {
				continue
			}
			list := data[2:]
			for len(list) > 0 {
				l := int(list[0])
				if len(list) < 1+l {
					break
				}
				h.alpn = append(h.alpn, string(list[1:1+l]))
				list = list[1+l:]
			}
		}
	}
	return h
}

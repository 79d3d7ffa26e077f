package proxy

import (
	"encoding/binary"
	"io"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The HTTP/2 request filter. The listeners serve HTTP/2 with net/http's
// bundled server, which answers two kinds of client frames otherwise than
// RFC 9113 asks:
//
//   - A SETTINGS frame that repeats a setting: Go's server hangs up
//     (PROTOCOL_ERROR); section 6.5.3 says the values are processed in the
//     order they appear, so the last one of each setting wins.
//   - A request with a connection-specific header field (connection,
//     keep-alive, proxy-connection, transfer-encoding, upgrade) or TE other
//     than "trailers": Go answers 400 from a handler of its own; section
//     8.2.2 makes the request malformed, a stream error of type
//     PROTOCOL_ERROR (Envoy resets the stream too).
//
// So once a connection has sent the HTTP/2 preface, its bytes pass through
// h2filter on their way to the server. It follows the frames; DATA and the
// other frames go through untouched, streamed. A SETTINGS frame with
// duplicates is rewritten to hold each setting once, with its last value
// (or an invalid one, which fails either way). Every header block is decoded
// with an HPACK decoder of the filter's own, which stays in step with the
// server's: both see the same bytes with the same table size
// (h2DecoderTableSize). A block with a connection-specific field gets one
// more field, a literal that never enters the dynamic table, whose
// upper-case name Go's framer refuses: the server then resets the stream
// with PROTOCOL_ERROR itself, and the request never reaches a handler.
//
// Whatever the filter cannot follow (a frame over the maximum size, a block
// interrupted by another frame, an HPACK error) is a connection error in the
// server too; the filter stops looking and passes the rest through.

// h2MaxFrame is the SETTINGS_MAX_FRAME_SIZE the listeners advertise
// (HTTP2Config.MaxReadFrameSize): Envoy's and the RFC's initial 16 KiB.
const h2MaxFrame = 16 << 10

// h2FilterBuf is the filter's initial input buffer: the read size of the
// HTTP/2 server's own reader, enough for the SETTINGS and header blocks of
// most connections. It grows (to a whole frame, 9+h2MaxFrame at most) only
// for a header block that does not fit; everything else streams through.
const h2FilterBuf = 4 << 10

// h2DecoderTableSize is the HPACK dynamic table size the listeners'
// servers decode with (HTTP2Config.MaxDecoderHeaderTableSize); the filter's
// decoder uses the same, so both tables hold the same entries.
const h2DecoderTableSize = 4096

// h2Malformed is the field appended to a malformed request's header block:
// a literal without indexing (RFC 7541 6.2.2) with an upper-case name and an
// empty value.
var h2Malformed = func() []byte {
	const name = "X-Bowline-Malformed"
	return append(append([]byte{0x00, byte(len(name))}, name...), 0x00)
}()

type h2filter struct {
	src  io.Reader
	buf  []byte // input; buf[r:w] is not processed yet
	r, w int
	out  []byte // processed bytes for the server (aliases buf or scratch)
	// scratch holds a rewritten frame.
	scratch []byte
	err     error // from src, returned once buf is drained
	pass    int   // payload bytes of the current frame passed through unexamined
	off     bool  // stopped following: everything passes through

	dec   *hpack.Decoder
	block uint32 // stream of the header block in progress (0: none)
	bad   bool   // the block in progress has a connection-specific field
	te    int    // TE fields in the block in progress
}

// newH2Filter follows the frames read from src, which starts after the
// client preface; pending are bytes already read from it.
func newH2Filter(src io.Reader, pending []byte) *h2filter {
	f := &h2filter{src: src, buf: make([]byte, max(h2FilterBuf, len(pending)))}
	f.w = copy(f.buf, pending)
	f.dec = hpack.NewDecoder(h2DecoderTableSize, f.field)
	return f
}

func (f *h2filter) Read(p []byte) (int, error) {
	for len(f.out) == 0 {
		if f.r == f.w && f.err == nil && (f.off || f.pass > 0) && len(p) > 0 {
			// Passing a payload through and nothing buffered: read
			// straight into p.
			lim := len(p)
			if !f.off {
				lim = min(lim, f.pass)
			}
			n, err := f.src.Read(p[:lim])
			if !f.off {
				f.pass -= n
			}
			return n, err
		}
		if f.step() {
			continue
		}
		if f.err != nil {
			err := f.err
			f.err = nil
			return 0, err
		}
		if f.r > 0 {
			f.w = copy(f.buf, f.buf[f.r:f.w])
			f.r = 0
		}
		if f.w == len(f.buf) {
			// A frame to examine that is larger than the buffer (step
			// needs 9+h2MaxFrame bytes at most).
			f.buf = append(f.buf, make([]byte, min(len(f.buf), 9+h2MaxFrame-len(f.buf)))...)
		}
		n, err := f.src.Read(f.buf[f.w:])
		f.w += n
		f.err = err
	}
	n := copy(p, f.out)
	f.out = f.out[n:]
	return n, nil
}

// step processes what it can of buf[r:w] into out; false means it needs
// more input.
func (f *h2filter) step() bool {
	in := f.buf[f.r:f.w]
	if f.off || f.pass > 0 {
		n := len(in)
		if !f.off {
			n = min(n, f.pass)
			f.pass -= n
		}
		f.out, f.r = in[:n], f.r+n
		return n > 0
	}
	if len(in) < 9 {
		return false
	}
	length := int(in[0])<<16 | int(in[1])<<8 | int(in[2])
	typ, flags := http2.FrameType(in[3]), http2.Flags(in[4])
	stream := binary.BigEndian.Uint32(in[5:9]) & (1<<31 - 1)
	examine := false
	switch {
	case length > h2MaxFrame:
		f.off = true // FRAME_SIZE_ERROR in the server
		return true
	case f.block != 0:
		if typ != http2.FrameContinuation || stream != f.block {
			f.off = true // PROTOCOL_ERROR in the server
			return true
		}
		examine = true
	case typ == http2.FrameHeaders && stream != 0:
		examine = true
	case typ == http2.FrameSettings && flags&http2.FlagSettingsAck == 0 && stream == 0 && length%6 == 0:
		examine = true
	}
	if !examine {
		f.out, f.r, f.pass = in[:9], f.r+9, length
		return true
	}
	if len(in) < 9+length {
		return false
	}
	f.r += 9 + length
	f.out = f.examine(typ, flags, stream, in[:9+length])
	return true
}

// examine returns what the server gets for a whole SETTINGS, HEADERS or
// CONTINUATION frame.
func (f *h2filter) examine(typ http2.FrameType, flags http2.Flags, stream uint32, frame []byte) []byte {
	payload := frame[9:]
	if typ == http2.FrameSettings {
		return f.settings(frame)
	}
	frag := payload
	if typ == http2.FrameHeaders {
		pad := 0
		if flags&http2.FlagHeadersPadded != 0 {
			if len(frag) < 1 {
				f.off = true
				return frame
			}
			pad, frag = int(frag[0]), frag[1:]
		}
		if flags&http2.FlagHeadersPriority != 0 {
			if len(frag) < 5 {
				f.off = true
				return frame
			}
			frag = frag[5:]
		}
		if pad > len(frag) {
			// A stream error in the server, which then does not decode
			// the block: the tables would no longer agree.
			f.off = true
			return frame
		}
		frag = frag[:len(frag)-pad]
		f.block, f.bad, f.te = stream, false, 0
	}
	if _, err := f.dec.Write(frag); err != nil {
		f.off = true // COMPRESSION_ERROR in the server
		return frame
	}
	if flags&http2.FlagHeadersEndHeaders == 0 {
		return frame
	}
	f.block = 0
	if err := f.dec.Close(); err != nil {
		f.off = true
		return frame
	}
	if !f.bad {
		return frame
	}
	// Append the malformed field in a CONTINUATION frame that now ends the
	// block (HEADERS and CONTINUATION share the END_HEADERS bit).
	f.scratch = append(f.scratch[:0], frame...)
	f.scratch[4] &^= byte(http2.FlagHeadersEndHeaders)
	var h [9]byte
	h[2] = byte(len(h2Malformed))
	h[3] = byte(http2.FrameContinuation)
	h[4] = byte(http2.FlagContinuationEndHeaders)
	binary.BigEndian.PutUint32(h[5:], stream)
	f.scratch = append(append(f.scratch, h[:]...), h2Malformed...)
	return f.scratch
}

// field notes a decoded field of the block in progress.
func (f *h2filter) field(hf hpack.HeaderField) {
	switch hf.Name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		f.bad = true
	case "te":
		// One TE field, "trailers" (or empty, which Go also takes).
		f.te++
		if f.te > 1 || (hf.Value != "trailers" && hf.Value != "") {
			f.bad = true
		}
	}
}

// settings returns a SETTINGS frame with each setting once: the last value
// given, or the first invalid one (which fails as it would have in order).
func (f *h2filter) settings(frame []byte) []byte {
	payload := frame[9:]
	n := len(payload) / 6
	if n > 100 {
		return frame // refused by the server as a whole
	}
	dup := false
	for i := 0; i < n && !dup; i++ {
		for j := i + 1; j < n; j++ {
			if payload[i*6] == payload[j*6] && payload[i*6+1] == payload[j*6+1] {
				dup = true
				break
			}
		}
	}
	if !dup {
		return frame
	}
	f.scratch = append(f.scratch[:0], frame[:9]...)
	var kept []http2.Setting
	var invalid []bool
	for i := range n {
		s := http2.Setting{ID: http2.SettingID(binary.BigEndian.Uint16(payload[i*6:])), Val: binary.BigEndian.Uint32(payload[i*6+2:])}
		k := 0
		for k < len(kept) && kept[k].ID != s.ID {
			k++
		}
		if k == len(kept) {
			kept = append(kept, s)
			invalid = append(invalid, s.Valid() != nil)
			continue
		}
		if !invalid[k] {
			kept[k], invalid[k] = s, s.Valid() != nil
		}
	}
	for _, s := range kept {
		f.scratch = binary.BigEndian.AppendUint16(f.scratch, uint16(s.ID))
		f.scratch = binary.BigEndian.AppendUint32(f.scratch, s.Val)
	}
	l := len(kept) * 6
	f.scratch[0], f.scratch[1], f.scratch[2] = byte(l>>16), byte(l>>8), byte(l)
	return f.scratch
}

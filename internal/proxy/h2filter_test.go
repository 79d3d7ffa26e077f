package proxy

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Frames builds client frames (after the preface) with a framer.
type h2Frames struct {
	buf bytes.Buffer
	fr  *http2.Framer
	enc *hpack.Encoder
	hb  bytes.Buffer
}

func newH2Frames() *h2Frames {
	f := &h2Frames{}
	f.fr = http2.NewFramer(&f.buf, nil)
	f.enc = hpack.NewEncoder(&f.hb)
	return f
}

// block encodes a GET for path with extra fields (indexed into the dynamic
// table, so later blocks refer to them).
func (f *h2Frames) block(path string, extra ...hpack.HeaderField) []byte {
	f.hb.Reset()
	for _, hf := range append([]hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"},
		{Name: ":authority", Value: "a"}, {Name: ":path", Value: path}}, extra...) {
		_ = f.enc.WriteField(hf)
	}
	return bytes.Clone(f.hb.Bytes())
}

func (f *h2Frames) headers(stream uint32, block []byte) *h2Frames {
	_ = f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: block, EndStream: true, EndHeaders: true})
	return f
}

// filtered is what h2filter passes on for in, read with reads of at most
// chunk bytes from src.
func filtered(t testing.TB, in []byte, chunk int) []byte {
	t.Helper()
	f := newH2Filter(&chunkReader{b: in, n: chunk}, nil)
	out, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[n:]
	return n, nil
}

// serverView reads frames as Go's HTTP/2 server does: the requests it
// accepts (their :path), the streams it resets with PROTOCOL_ERROR and the
// SETTINGS it processes.
type serverView struct {
	paths    []string
	reset    []uint32
	settings [][]http2.Setting
	fields   [][]hpack.HeaderField
	err      error // the connection error it stops at, if any
}

func readAsServer(b []byte) serverView {
	fr := http2.NewFramer(io.Discard, bytes.NewReader(b))
	fr.ReadMetaHeaders = hpack.NewDecoder(h2DecoderTableSize, nil)
	fr.SetMaxReadFrameSize(h2MaxFrame)
	var v serverView
	for {
		f, err := fr.ReadFrame()
		var se http2.StreamError
		switch {
		case errors.As(err, &se):
			if se.Code == http2.ErrCodeProtocol {
				v.reset = append(v.reset, se.StreamID)
			}
			continue
		case errors.Is(err, io.EOF):
			return v
		case err != nil:
			v.err = err
			return v
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			v.paths = append(v.paths, f.PseudoValue("path"))
			v.fields = append(v.fields, f.Fields)
		case *http2.SettingsFrame:
			var ss []http2.Setting
			_ = f.ForeachSetting(func(s http2.Setting) error { ss = append(ss, s); return nil })
			v.settings = append(v.settings, ss)
		}
	}
}

// TestH2Filter: header blocks with a connection-specific field or TE other
// than trailers become stream errors in Go's framer, wherever the field sits
// (dynamic table, CONTINUATION, padded HEADERS); clean frames pass byte for
// byte; repeated settings keep their last value; reads of any size give the
// same bytes.
func TestH2Filter(t *testing.T) {
	f := newH2Frames()
	_ = f.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100},
		http2.Setting{ID: http2.SettingMaxFrameSize, Val: 16384}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
	f.headers(1, f.block("/conn", hpack.HeaderField{Name: "connection", Value: "keep-alive"}))
	f.headers(3, f.block("/ok", hpack.HeaderField{Name: "te", Value: "trailers"}, hpack.HeaderField{Name: "x-a", Value: "1"}))
	f.headers(5, f.block("/te", hpack.HeaderField{Name: "te", Value: "gzip"}))
	// The same connection field again: now an index into the dynamic table.
	f.headers(7, f.block("/conn-indexed", hpack.HeaderField{Name: "connection", Value: "keep-alive"}))
	b := f.block("/split", hpack.HeaderField{Name: "upgrade", Value: "h2c"}, hpack.HeaderField{Name: "x-b", Value: "2"})
	_ = f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 9, BlockFragment: b[:3], EndStream: true})
	_ = f.fr.WriteContinuation(9, false, b[3:5])
	_ = f.fr.WriteContinuation(9, true, b[5:])
	_ = f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 11, BlockFragment: f.block("/padded",
		hpack.HeaderField{Name: "transfer-encoding", Value: "chunked"}), EndStream: true, EndHeaders: true,
		PadLength: 7, Priority: http2.PriorityParam{StreamDep: 3, Weight: 9}})
	f.headers(13, f.block("/two-te", hpack.HeaderField{Name: "te", Value: "trailers"}, hpack.HeaderField{Name: "te", Value: "trailers"}))
	_ = f.fr.WriteData(3, true, []byte("body bytes"))
	f.headers(15, f.block("/last"))
	in := f.buf.Bytes()

	out := filtered(t, in, len(in))
	for _, n := range []int{1, 2, 7, 100} {
		if got := filtered(t, in, n); !bytes.Equal(got, out) {
			t.Fatalf("reads of %d bytes gave other bytes than one read", n)
		}
	}
	v := readAsServer(out)
	if v.err != nil {
		t.Fatalf("connection error %v", v.err)
	}
	if want := []string{"/ok", "/last"}; !slices.Equal(v.paths, want) {
		t.Errorf("accepted %q, want %q", v.paths, want)
	}
	if want := []uint32{1, 5, 7, 9, 11, 13}; !slices.Equal(v.reset, want) {
		t.Errorf("reset streams %v, want %v", v.reset, want)
	}
	if len(v.settings) != 1 || len(v.settings[0]) != 2 || v.settings[0][0] != (http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1}) {
		t.Errorf("settings %v, want INITIAL_WINDOW_SIZE=1 and MAX_FRAME_SIZE once each", v.settings)
	}

	// Without anything to fix the bytes are the client's.
	clean := newH2Frames()
	_ = clean.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100})
	clean.headers(1, clean.block("/a", hpack.HeaderField{Name: "te", Value: "trailers"}))
	_ = clean.fr.WriteData(1, true, bytes.Repeat([]byte("x"), 20000))
	clean.headers(3, clean.block("/b"))
	// A header block larger than the filter's initial buffer.
	clean.headers(5, clean.block("/big", hpack.HeaderField{Name: "x-big", Value: strings.Repeat("v", 12<<10)}))
	for _, n := range []int{1000, 1 << 20} {
		if got := filtered(t, clean.buf.Bytes(), n); !bytes.Equal(got, clean.buf.Bytes()) {
			t.Errorf("clean frames were changed (reads of %d bytes)", n)
		}
	}
	big := newH2Frames()
	big.headers(1, big.block("/big", hpack.HeaderField{Name: "x-big", Value: strings.Repeat("v", 12<<10)}))
	big.headers(3, big.block("/next"))
	if v := readAsServer(filtered(t, big.buf.Bytes(), 1000)); v.err != nil || !slices.Equal(v.paths, []string{"/big", "/next"}) {
		t.Errorf("accepted %q (error %v), want /big /next", v.paths, v.err)
	}
	bad := newH2Frames()
	bad.headers(1, bad.block("/big-conn", hpack.HeaderField{Name: "x-big", Value: strings.Repeat("v", 12<<10)},
		hpack.HeaderField{Name: "connection", Value: "close"}))
	if v := readAsServer(filtered(t, bad.buf.Bytes(), 1000)); len(v.paths) != 0 || !slices.Equal(v.reset, []uint32{1}) {
		t.Errorf("a 12 KiB block with a connection field: accepted %q, reset %v; want stream 1 reset", v.paths, v.reset)
	}
}

// FuzzH2Filter: whatever the client sends, Go's framer never accepts a
// header block with a connection-specific field or TE other than trailers
// from the filter's output, never sees a SETTINGS frame with a repeated
// setting, and the output does not depend on how the input was read.
func FuzzH2Filter(f *testing.F) {
	s := newH2Frames()
	_ = s.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
	s.headers(1, s.block("/a", hpack.HeaderField{Name: "connection", Value: "close"}))
	s.headers(3, s.block("/b", hpack.HeaderField{Name: "te", Value: "trailers"}))
	s.headers(5, s.block("/c", hpack.HeaderField{Name: "connection", Value: "close"}))
	_ = s.fr.WriteData(3, true, []byte("data"))
	f.Add(s.buf.Bytes(), uint8(3))
	s = newH2Frames()
	b := s.block("/split", hpack.HeaderField{Name: "keep-alive", Value: "1"})
	_ = s.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:4], PadLength: 2})
	_ = s.fr.WriteContinuation(1, true, b[4:])
	_ = s.fr.WritePing(false, [8]byte{1})
	f.Add(s.buf.Bytes(), uint8(1))
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		out := filtered(t, in, len(in)+1)
		if got := filtered(t, in, int(chunk)+1); !bytes.Equal(got, out) {
			t.Fatalf("reads of %d bytes gave other bytes than one read", int(chunk)+1)
		}
		v := readAsServer(out)
		for i, fields := range v.fields {
			var fake h2filter
			for _, hf := range fields {
				fake.field(hf)
			}
			if fake.bad {
				t.Fatalf("the server accepted %s with %v", v.paths[i], fields)
			}
		}
		for _, ss := range v.settings {
			seen := map[http2.SettingID]bool{}
			for _, s := range ss {
				if seen[s.ID] && len(ss) <= 100 {
					t.Fatalf("the server got SETTINGS repeating %v: %v", s.ID, ss)
				}
				seen[s.ID] = true
			}
		}
	})
}

// BenchmarkH2Filter: the filter's cost per HTTP/2 connection (a new filter,
// SETTINGS and a first request) and per request on a connection (a gRPC
// call's header block, mostly indexed after the first, and its DATA frame),
// read through a buffer of the size the HTTP/2 server reads with.
func BenchmarkH2Filter(b *testing.B) {
	grpcCall := func(f *h2Frames, stream uint32) {
		f.headers(stream, f.block("/pkg.Service/Method", hpack.HeaderField{Name: "content-type", Value: "application/grpc"},
			hpack.HeaderField{Name: "te", Value: "trailers"}, hpack.HeaderField{Name: "user-agent", Value: "grpc-go/1.70.0"},
			hpack.HeaderField{Name: "grpc-timeout", Value: "9999m"}, hpack.HeaderField{Name: "x-request-id", Value: "3f0c8a1e-7c55-4a3e-9d38-6a0d3b1c2e4f"}))
		_ = f.fr.WriteData(stream, true, bytes.Repeat([]byte("x"), 1024))
	}
	buf := make([]byte, 4<<10) // net/http's HTTP/2 server reads through a 4 KiB bufio.Reader
	b.Run("connection", func(b *testing.B) {
		f := newH2Frames()
		_ = f.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
		grpcCall(f, 1)
		in := f.buf.Bytes()
		b.ReportAllocs()
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			h := newH2Filter(bytes.NewReader(in), nil)
			for {
				if _, err := h.Read(buf); err != nil {
					break
				}
			}
		}
	})
	b.Run("request", func(b *testing.B) {
		f := newH2Frames()
		grpcCall(f, 1) // fills the encoder's dynamic table, as a connection's first call does
		first := len(f.buf.Bytes())
		for i := range 1000 {
			grpcCall(f, uint32(3+2*i))
		}
		in := f.buf.Bytes()
		per := (len(in) - first) / 1000
		b.ReportAllocs()
		b.SetBytes(int64(per))
		r := &cycleReader{b: in, start: first}
		h := newH2Filter(r, nil)
		for b.Loop() {
			// One request's bytes (the reader cycles through the calls).
			for left := per; left > 0; {
				n, err := h.Read(buf[:min(len(buf), left)])
				if err != nil {
					b.Fatal(err)
				}
				left -= n
			}
		}
	})
}

// cycleReader reads b from the start, then b[start:] over and over.
type cycleReader struct {
	b     []byte
	start int
	off   int
}

func (r *cycleReader) Read(p []byte) (int, error) {
	if r.off == len(r.b) {
		r.off = r.start
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}

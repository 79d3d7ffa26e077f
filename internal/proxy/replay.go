package proxy

import (
	"errors"
	"io"
	"sync"
)

// errStaleAttempt is returned to an upstream attempt that was superseded by
// a retry while its transport was still reading the body.
var errStaleAttempt = errors.New("request body: attempt superseded by a retry")

// replayBody streams a downstream request body to upstream attempts while
// keeping up to limit bytes, so a retry can send the same body again. Bytes
// beyond the limit are streamed but not kept; the body is then no longer
// replayable. Only the newest attempt may read; a transport that still reads
// an older attempt's body (Go transports may, after RoundTrip returned) gets
// errStaleAttempt, and whatever it pulled from the downstream is kept for
// the new attempt.
type replayBody struct {
	src   io.ReadCloser
	limit int

	srcMu sync.Mutex // serializes reads of src

	mu       sync.Mutex
	buf      []byte
	n        int64 // bytes read from src
	overflow bool
	lost     bool // bytes were read for a stale attempt past the limit
	err      error
	gen      int
}

func newReplayBody(src io.ReadCloser, limit int) *replayBody {
	return &replayBody{src: src, limit: limit}
}

// attempt returns the body reader of a new attempt; earlier readers go stale.
func (b *replayBody) attempt() io.ReadCloser {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gen++
	return &attemptBody{b: b, gen: b.gen}
}

// getBody is http.Request.GetBody: a new attempt's reader, while the body
// is replayable.
func (b *replayBody) getBody() (io.ReadCloser, error) {
	if !b.replayable() {
		return nil, errors.New("request body: larger than the retry buffer, cannot be sent again")
	}
	return b.attempt(), nil
}

// replayable reports whether a retry can resend the whole body read so far.
func (b *replayBody) replayable() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.overflow
}

// complete returns the whole body when it was read to its end within the limit.
func (b *replayBody) complete() ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf, !b.overflow && b.err == io.EOF
}

// srcErr is the error reading the source ended with (io.EOF at its end).
func (b *replayBody) srcErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

func (b *replayBody) total() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

type attemptBody struct {
	b   *replayBody
	gen int
	off int
}

func (a *attemptBody) Read(p []byte) (int, error) {
	b := a.b
	if n, err, done := a.fromBuffer(p); done {
		return n, err
	}
	b.srcMu.Lock()
	defer b.srcMu.Unlock()
	// Another reader may have pulled bytes while this one waited.
	if n, err, done := a.fromBuffer(p); done {
		return n, err
	}
	n, err := b.src.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n += int64(n)
	if err != nil {
		b.err = err
	}
	stale := a.gen != b.gen
	if !b.overflow {
		if len(b.buf)+n > b.limit {
			b.overflow = true
			b.buf = nil
			if stale {
				b.lost = true
			}
		} else {
			b.buf = append(b.buf, p[:n]...)
			a.off += n
		}
	} else if stale {
		b.lost = true
	}
	if stale {
		return 0, errStaleAttempt
	}
	return n, err
}

// fromBuffer serves kept bytes not yet sent by this attempt; done is false
// when the reader must go to the source.
func (a *attemptBody) fromBuffer(p []byte) (int, error, bool) {
	b := a.b
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case a.gen != b.gen:
		return 0, errStaleAttempt, true
	case b.lost:
		return 0, errors.New("request body: lost bytes to a superseded attempt"), true
	case !b.overflow && a.off < len(b.buf):
		n := copy(p, b.buf[a.off:])
		a.off += n
		return n, nil, true
	case b.err != nil:
		return 0, b.err, true
	}
	return 0, nil, false
}

// Close does not close the downstream body: the server owns it.
func (a *attemptBody) Close() error { return nil }

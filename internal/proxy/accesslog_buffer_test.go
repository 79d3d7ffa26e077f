package proxy

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// countingWriter counts Write calls.
type countingWriter struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	return w.b.Write(p)
}

func (w *countingWriter) state() (string, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String(), w.writes
}

// TestBufferedAccessLog: a buffered logger writes nothing until a flush,
// then every waiting line, in order, in one write; 64 KiB of lines ask the
// flusher for a flush; a writer that falls 1 MiB behind is written by the
// logging request itself.
func TestBufferedAccessLog(t *testing.T) {
	w := &countingWriter{}
	kick := make(chan struct{}, 1)
	a := bufferedAccessLogger(accessLogText, w, kick)
	for i := range 3 {
		a.log(&record{method: "GET", path: "/" + strconv.Itoa(i), protocol: "HTTP/1.1", code: 200})
	}
	a.write([]byte("custom line\n"))
	if out, n := w.state(); n != 0 || out != "" {
		t.Fatalf("written before a flush: %d writes %q", n, out)
	}
	a.flush()
	out, n := w.state()
	if n != 1 {
		t.Fatalf("%d writes for one flush, want 1", n)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 4 || !strings.Contains(lines[0], `"GET /0 HTTP/1.1" 200`) || !strings.Contains(lines[2], "/2 ") || lines[3] != "custom line" {
		t.Fatalf("lines %q", lines)
	}
	a.flush()
	if _, n := w.state(); n != 1 {
		t.Fatal("an empty flush wrote")
	}

	long := &record{method: "GET", path: "/" + strings.Repeat("a", 1000), protocol: "HTTP/1.1", code: 200}
	for range 70 {
		a.log(long)
	}
	select {
	case <-kick:
	default:
		t.Fatal("70 KB waiting and no flush asked for")
	}
	if _, n := w.state(); n != 1 {
		t.Fatal("the request path wrote below the 1 MiB bound")
	}
	for range 1100 {
		a.log(long)
	}
	out, n = w.state()
	if n != 2 || strings.Count(out, "\n") < 900 {
		t.Fatalf("after 1.1 MB not flushed: %d writes, %d lines", n, strings.Count(out, "\n"))
	}
}

// BenchmarkAccessLog is the request path's cost of one JSON access log
// line written to a file: as each line is logged (a write system call per
// request) and buffered (a flusher writes them, here every 1000 lines).
func BenchmarkAccessLog(b *testing.B) {
	rec := &record{method: "GET", path: "/api/v1/items?limit=10", protocol: "HTTP/1.1", code: 200, bytesOut: 1024,
		authority: "echo.prod.svc.cluster.local:8080", requestID: "4b8c7a52-6d0e-4f7a-9d3a-1b2c3d4e5f60",
		upstreamHost: "10.0.0.7:8080", upstreamCluster: "outbound|8080||echo.prod.svc.cluster.local"}
	for _, buffered := range []bool{false, true} {
		name := "unbuffered"
		if buffered {
			name = "buffered"
		}
		b.Run(name, func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "access.log"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			a := newAccessLogger(accessLogJSON, f)
			if buffered {
				a = bufferedAccessLogger(accessLogJSON, f, make(chan struct{}, 1))
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				a.log(rec)
				if i++; buffered && i%1000 == 0 {
					a.flush()
				}
			}
			a.flush()
		})
	}
}

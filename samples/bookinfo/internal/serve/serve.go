// Package serve owns how a Bookinfo service listens: the address from
// $BIND_ADDR and $PORT, an access log line per request, and a graceful stop
// when the context ends (after $SHUTDOWN_DELAY of serving on, as a
// Kubernetes workload keeps serving while its endpoint's removal reaches
// the callers).
//
// It imports only the standard library and none of Bowline's packages.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Defaults for the listening address.
const (
	DefaultBindAddr = "127.0.0.1"
	DefaultPort     = "9080"
)

// Log attribute keys.
const (
	attrAddr     = "addr"
	attrMethod   = "method"
	attrPath     = "path"
	attrStatus   = "status"
	attrDuration = "duration"
	attrRequest  = "request_id"
	attrDelay    = "delay"
)

// Addr returns host:port from $BIND_ADDR (default 127.0.0.1) and $PORT
// (default 9080).
func Addr(getenv func(string) string) string {
	host, port := getenv("BIND_ADDR"), getenv("PORT")
	if host == "" {
		host = DefaultBindAddr
	}
	if port == "" {
		port = DefaultPort
	}
	return net.JoinHostPort(host, port)
}

// Server serves one handler on one address.
type Server struct {
	addr string
	h    http.Handler
	log  *slog.Logger
	// delay is how long the server keeps serving once its context ends
	// (new connections too, each answer with "Connection: close") before
	// it stops accepting.
	delay time.Duration
	// after is time.After, injectable for tests.
	after func(time.Duration) <-chan time.Time
}

// New returns a server for h on addr; it starts nothing.
func New(addr string, h http.Handler, log *slog.Logger) *Server {
	return &Server{addr: addr, h: h, log: log, after: time.After}
}

// FromEnv returns a server for h on Addr(getenv) that keeps serving for
// $SHUTDOWN_DELAY (a Go duration, default 0) once its context ends. On
// Kubernetes a pod's SIGTERM and the removal of its endpoint happen at the
// same time, and the removal takes a moment to reach every caller (kube-proxy,
// a mesh's proxies): a server that stops accepting at once fails the
// requests sent in that moment. The Bookinfo images set 5s.
func FromEnv(getenv func(string) string, h http.Handler, log *slog.Logger) (*Server, error) {
	s := New(Addr(getenv), h, log)
	if v := getenv("SHUTDOWN_DELAY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("SHUTDOWN_DELAY=%q: want a duration like 5s", v)
		}
		s.delay = d
	}
	return s, nil
}

// Run listens and serves until ctx ends, then lets in-flight requests finish
// for up to five seconds.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on an existing listener.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           AccessLog(s.log, s.h),
		ReadHeaderTimeout: 10 * time.Second,
	}
	s.log.Info("listening", slog.String(attrAddr, ln.Addr().String()))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	if s.delay > 0 {
		s.log.Info("stopping after the shutdown delay", slog.Duration(attrDelay, s.delay))
		srv.SetKeepAlivesEnabled(false)
		select {
		case err := <-errc:
			return fmt.Errorf("serve %s: %w", ln.Addr(), err)
		case <-s.after(s.delay):
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down %s: %w", ln.Addr(), err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// AccessLog logs one line per request at INFO.
func AccessLog(log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		log.Info("request served",
			slog.String(attrMethod, r.Method),
			slog.String(attrPath, r.URL.RequestURI()),
			slog.Int(attrStatus, sw.status),
			slog.Duration(attrDuration, time.Since(start)),
			slog.String(attrRequest, r.Header.Get("x-request-id")))
	})
}

package proxy

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// serveAdmin runs the admin endpoint on ln until ctx ends.
func (p *Proxy) serveAdmin(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !p.Ready() {
			http.Error(w, "PRE_INITIALIZING", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("LIVE\n"))
	})
	mux.Handle("/stats/prometheus", promhttp.HandlerFor(p.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/failures", p.serveFailures) // failures.go
	mux.HandleFunc("/config_dump", p.configDump)       // admin_dump.go
	mux.HandleFunc("/stats", p.statsText)              // admin_stats.go
	mux.HandleFunc("/certs", p.certsHandler)           // identity.go
	mux.HandleFunc("/clusters", func(w http.ResponseWriter, _ *http.Request) {
		s := p.snap.Load()
		var b strings.Builder
		if s != nil {
			names := make([]string, 0, len(s.clusters))
			for n := range s.clusters {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				c := s.clusters[n]
				b.WriteString(n + "::rq_active::" + itoa(int(c.active.Load())) + "\n")
				clusterStatusLines(&b, c)
			}
		}
		w.Header().Set("content-type", "text/plain")
		_, _ = w.Write([]byte(b.String()))
	})
	mux.HandleFunc("/logging", func(w http.ResponseWriter, r *http.Request) {
		if lvl := r.URL.Query().Get("level"); lvl != "" && p.cfg.LogLevel != nil {
			if r.Method != http.MethodPost {
				http.Error(w, "use POST to change the level", http.StatusMethodNotAllowed)
				return
			}
			var l slog.Level
			if err := l.UnmarshalText([]byte(lvl)); err != nil {
				http.Error(w, "unknown level", http.StatusBadRequest)
				return
			}
			p.cfg.LogLevel.Set(l)
		}
		level := "info"
		if p.cfg.LogLevel != nil {
			level = strings.ToLower(p.cfg.LogLevel.Level().String())
		}
		_, _ = w.Write([]byte("active level: " + level + "\n"))
	})
	mux.HandleFunc("/drain", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		go p.drainAll()
		_, _ = w.Write([]byte("OK\n"))
	})
	mux.HandleFunc("/quitquitquit", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		p.Quit()
		_, _ = w.Write([]byte("OK\n"))
	})
	// Go's profiler, like Envoy's admin /cpuprofiler and /heapprofiler:
	// answered to loopback clients only, whatever address the admin port
	// listens on.
	mux.Handle("/debug/pprof/", localOnly(http.HandlerFunc(pprof.Index)))
	mux.Handle("/debug/pprof/cmdline", localOnly(http.HandlerFunc(pprof.Cmdline)))
	mux.Handle("/debug/pprof/profile", localOnly(http.HandlerFunc(pprof.Profile)))
	mux.Handle("/debug/pprof/symbol", localOnly(http.HandlerFunc(pprof.Symbol)))
	mux.Handle("/debug/pprof/trace", localOnly(http.HandlerFunc(pprof.Trace)))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}

// localOnly refuses requests that do not come from a loopback address.
func localOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil || !ap.Addr().Unmap().IsLoopback() {
			http.Error(w, "served to localhost only", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

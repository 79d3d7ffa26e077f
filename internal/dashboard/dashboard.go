package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/config/analysis"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// Defaults of Config.
const (
	DefaultInterval  = 5 * time.Second
	DefaultRetention = 10 * time.Minute
	DefaultWindow    = time.Minute
	scrapeTimeout    = 3 * time.Second
)

// Proxy is one proxy connected to the control plane, as the command wiring
// the dashboard reports it (from the xDS server's sync status).
type Proxy struct {
	// ID is the xDS node id.
	ID string `json:"id"`
	// Name is WORKLOAD.NAMESPACE, as proxy-status names proxies.
	Name string `json:"name"`
	// Type is sidecar or router.
	Type      string            `json:"type"`
	Namespace string            `json:"namespace"`
	Workload  string            `json:"workload"`
	Labels    map[string]string `json:"labels,omitempty"`
	// StatsAddress is where its /stats/prometheus is scraped ("" : not scraped).
	StatsAddress string `json:"statsAddress,omitempty"`
	// Sync is the state per xDS type (CDS, LDS, EDS, RDS): SYNCED, STALE, NACK or NOT SENT.
	Sync map[string]SyncState `json:"sync"`
	// ConnectedSince is when its stream started.
	ConnectedSince time.Time `json:"connectedSince"`
}

// SyncState is one xDS type's state for one proxy.
type SyncState struct {
	State string `json:"state"`
	// NACK is the proxy's rejection text when State is NACK.
	NACK string `json:"nack,omitempty"`
}

// Config configures a Dashboard.
type Config struct {
	// Proxies returns the connected proxies. Required.
	Proxies func() []Proxy
	// Store is the configuration in force. Required.
	Store *config.Store
	// Services returns the registry's services (nil: none shown).
	Services func() []*registry.Service
	// MeshProblems returns configuration the model skipped (nil: none).
	MeshProblems func() []string
	// Analysis tunes the analyzers run over the configuration (bowline analyze's).
	Analysis analysis.Options
	// Interval is how often proxies are scraped; DefaultInterval when 0.
	Interval time.Duration
	// Retention is how much history is kept; DefaultRetention when 0.
	Retention time.Duration
	// Client scrapes the proxies; one with a short timeout and no proxy when nil.
	Client *http.Client
	// Logger receives DEBUG logs of failed scrapes; discarded when nil.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Dashboard scrapes proxies and serves the web UI. Build it with New, start
// the scraping with Run and mount Handlers on an HTTP server.
type Dashboard struct {
	cfg Config
	col *collector

	mu       sync.Mutex
	analyzed uint64 // store version of the cached analysis
	messages []analysis.Message
}

//go:embed web
var webFS embed.FS

// New checks cfg and builds a Dashboard. It starts nothing.
func New(cfg Config) (*Dashboard, error) {
	if cfg.Proxies == nil || cfg.Store == nil {
		return nil, errors.New("dashboard: Proxies and Store are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: scrapeTimeout, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute}}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Dashboard{cfg: cfg, col: newCollector(cfg.Client, cfg.Retention)}, nil
}

// Run scrapes every proxy each Interval until ctx ends.
func (d *Dashboard) Run(ctx context.Context) error {
	t := time.NewTicker(d.cfg.Interval)
	defer t.Stop()
	for {
		d.scrapeOnce(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (d *Dashboard) scrapeOnce(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, scrapeTimeout)
	defer cancel()
	d.col.round(sctx, d.cfg.Proxies(), d.cfg.Now())
}

// Handlers returns the dashboard's routes by http.ServeMux pattern: the
// page at /, its JSON at /dashboard/api/mesh.
func (d *Dashboard) Handlers() map[string]http.Handler {
	static, _ := fs.Sub(webFS, "web")
	index, _ := fs.ReadFile(static, "index.html")
	return map[string]http.Handler{
		"GET /{$}": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache")
			_, _ = w.Write(index)
		}),
		"GET /dashboard/api/mesh": http.HandlerFunc(d.serveMesh),
	}
}

func (d *Dashboard) serveMesh(w http.ResponseWriter, r *http.Request) {
	window := DefaultWindow
	if s := r.URL.Query().Get("window"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || time.Duration(n)*time.Second > d.cfg.Retention {
			http.Error(w, "window: want seconds from 1 to "+strconv.Itoa(int(d.cfg.Retention.Seconds())), http.StatusBadRequest)
			return
		}
		window = time.Duration(n) * time.Second
	}
	v := d.View(window)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

// analysisOf returns the analyzers' messages for the snapshot, cached by version.
func (d *Dashboard) analysisOf(snap *config.Snapshot) []analysis.Message {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.analyzed != snap.Version || d.messages == nil {
		d.messages = analysis.Analyze(analysis.Input{Objects: snap.Objects, Skipped: snap.Skipped}, d.cfg.Analysis)
		if d.messages == nil {
			d.messages = []analysis.Message{}
		}
		d.analyzed = snap.Version
	}
	return d.messages
}

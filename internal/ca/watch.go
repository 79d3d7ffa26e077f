package ca

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// DefaultWatchInterval is how often a DirWatcher looks at the CA directory.
const DefaultWatchInterval = 2 * time.Second

// DirWatcher reloads a CA when the files of its directory change (istiod's
// AUTO_RELOAD_PLUGIN_CERTS) or when Trigger is called (SIGHUP). A directory
// that does not validate — for instance half-way through an edit — leaves
// the current material in force and is retried at the next look until it
// validates. Build it with NewDirWatcher, start it with Run.
type DirWatcher struct {
	ca       *CA
	interval time.Duration
	log      *slog.Logger
	trigger  chan struct{}
	loaded   chan struct{}
	last     [sha256.Size]byte // the directory's content as last loaded
}

// NewDirWatcher watches c's directory every interval (DefaultWatchInterval
// when zero or negative). It starts nothing, but takes the directory's
// fingerprint now, so an edit made before Run starts is still seen.
func NewDirWatcher(c *CA, interval time.Duration) (*DirWatcher, error) {
	if c.cfg.Dir == "" {
		return nil, errors.New("watch: the CA has no directory")
	}
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	last, err := fingerprint(c.cfg.Dir)
	if err != nil {
		return nil, err
	}
	return &DirWatcher{ca: c, interval: interval, log: c.log, trigger: make(chan struct{}, 1), loaded: make(chan struct{}, 1), last: last}, nil
}

// Trigger asks Run to reload now, even if no file changed (for SIGHUP).
// It never blocks; triggers that arrive before Run picked up the previous
// one are coalesced.
func (w *DirWatcher) Trigger() {
	select {
	case w.trigger <- struct{}{}:
	default:
	}
}

// Reloaded receives (coalesced) after each successful reload; for tests and
// callers that wait for a change to take effect.
func (w *DirWatcher) Reloaded() <-chan struct{} { return w.loaded }

// Run looks at the directory every interval and reloads the CA when the
// content of any cacerts file changed since the last successful load, or
// when triggered. It returns nil when ctx ends.
func (w *DirWatcher) Run(ctx context.Context) error {
	last := w.last
	var lastErr string
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		forced := false
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-w.trigger:
			forced = true
		}
		fp, err := fingerprint(w.ca.cfg.Dir)
		if err != nil {
			if err.Error() != lastErr {
				w.log.Info("ca directory unreadable", slog.String(attrDir, w.ca.cfg.Dir), slog.String(attrError, err.Error()))
				lastErr = err.Error()
			}
			continue
		}
		if fp == last && !forced {
			continue
		}
		if err := w.ca.Reload(); err != nil {
			// Kept as is; retried at the next look (the edit may be half done).
			if err.Error() != lastErr {
				w.log.Info("ca reload failed, current material kept", slog.String(attrError, err.Error()))
				lastErr = err.Error()
			}
			continue
		}
		last, lastErr = fp, ""
		select {
		case w.loaded <- struct{}{}:
		default:
		}
	}
}

// fingerprint hashes the cacerts files of dir (a missing file counts as empty).
func fingerprint(dir string) ([sha256.Size]byte, error) {
	h := sha256.New()
	for _, name := range []string{CACertFile, CAKeyFile, RootCertFile, CertChainFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return [sha256.Size]byte{}, fmt.Errorf("watch %s: %w", name, err)
		}
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out, nil
}

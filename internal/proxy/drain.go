package proxy

import "log/slog"

// Graceful drain, as Envoy's POST /drain_listeners?graceful (with
// inboundonly for a sidecar) that Istio's agent asks for: the drained
// listeners keep accepting, but every HTTP connection on them is closed
// after the response in progress (HTTP/1.1 "Connection: close", idle ones at
// once; HTTP/2 GOAWAY once idle), so that callers open their next connection
// to an endpoint that is not going away, and readiness fails. A sidecar drains
// only its inbound listeners: the app may still call out while it shuts
// down. Nothing is closed here: Run's shutdown (SIGTERM, /quitquitquit)
// closes the listeners and waits for what is in flight.
//
// Istio's native sidecar (an init container with restartPolicy Always)
// starts it from its preStop hook when the pod's termination begins; the
// sidecar's SIGTERM comes once the app containers have exited.

// Drain starts the graceful drain; calling it again does nothing.
func (p *Proxy) Drain() {
	if p.gracefulDrain.Swap(true) {
		return
	}
	p.log.Info("listeners draining gracefully", slog.Bool("inbound_only", p.cfg.Node.Type != "router"))
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.bound {
		if b.srv != nil && p.drainsGracefully(b) {
			b.srv.SetKeepAlivesEnabled(false)
		}
	}
}

// Draining reports whether Drain was called.
func (p *Proxy) Draining() bool { return p.gracefulDrain.Load() }

// drainsGracefully reports whether b is one of the listeners a started
// graceful drain covers: a sidecar's inbound ones, every one of a gateway.
func (p *Proxy) drainsGracefully(b *boundListener) bool {
	return p.gracefulDrain.Load() && (b.inbound || p.cfg.Node.Type == "router")
}

package proxy

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bowline-mesh/bowline/internal/proxy/extauthz"
	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// This file wires envoy.filters.http.ext_authz (internal/proxy/extauthz)
// into the HTTP filter chain, and gives the checks their way to the
// authorization service's cluster.

var (
	_ httpFilter      = (*extAuthzFilter)(nil)
	_ extauthz.Dialer = (*clusterDialer)(nil)
)

// extAuthzFilterName is the filter's name, the key of its per-route config.
const extAuthzFilterName = "envoy.filters.http.ext_authz"

// extAuthzFilter is envoy.filters.http.ext_authz.
type extAuthzFilter struct {
	f               *extauthz.Filter
	name            string
	clearRouteCache bool
	m               *securityMetrics
}

func (e *filterEnv) extAuthz(name string, c *xdsconfig.ExtAuthzFilter) httpFilter {
	f := &extAuthzFilter{name: name, clearRouteCache: c.ClearRouteCache}
	if e == nil || e.authzPool == nil {
		f.f = extauthz.NewPool(noDialer{}).Filter(c.Config) // every check fails: no way to the service
		return f
	}
	f.f, f.m = e.authzPool.Filter(c.Config), e.sec
	return f
}

func (f *extAuthzFilter) decode(x *exchange) bool {
	var ext map[string]string
	if x.route != nil {
		pr, _ := x.route.PerFilter[f.name].(*xdsconfig.ExtAuthzPerRoute)
		if pr == nil && f.name != extAuthzFilterName {
			pr, _ = x.route.PerFilter[extAuthzFilterName].(*xdsconfig.ExtAuthzPerRoute)
		}
		if pr != nil && pr.Disabled {
			f.count(x, "disabled")
			return false
		}
		if pr != nil {
			ext = pr.ContextExtensions
		}
	}
	if !f.f.Enabled(x.sec.metadata) {
		return false
	}
	cfg := f.f.Config()
	r := x.r
	req := &extauthz.Request{ID: x.rec.requestID, Method: r.Method, Host: r.Host, Path: r.URL.RequestURI(), Scheme: "http",
		Protocol: r.Proto, Headers: r.Header, Size: r.ContentLength, ContextExtensions: ext, Metadata: x.sec.metadata}
	if r.TLS != nil {
		req.Scheme, req.SNI = "https", r.TLS.ServerName
	}
	if x.info != nil {
		req.Source, req.Destination = x.info.src, x.info.dst
	}
	if p, ok := peerPrincipal(r.TLS, x.info); ok {
		req.SourcePrincipal = p
		if cfg.IncludePeerCertificate {
			req.SourceCertificate = peerCertPEM(r, x.info)
		}
	}
	req.DestinationPrincipal = x.p.ownPrincipal()
	if cfg.Body != nil && r.Body != nil && r.Body != http.NoBody {
		if !f.bufferBody(x, req, cfg.Body) {
			return true
		}
	}
	d := f.f.Check(r.Context(), req)
	if d.Err != nil {
		x.p.log.Debug("external authorization check failed", slog.String("cluster", cfg.Cluster),
			slog.String("error", d.Err.Error()), slog.String("request_id", x.rec.requestID))
	}
	if !d.Allow {
		x.rec.flags |= flagUAEX
		x.rec.details = extauthz.DetailsDenied
		outcome := "denied"
		if d.Status == extauthz.Error {
			x.rec.details, outcome = extauthz.DetailsError, "error"
		}
		f.count(x, outcome)
		h := x.w.Header()
		for _, hv := range d.ResponseHeaders {
			h.Add(hv.Key, hv.Value)
		}
		if d.Body != "" && h.Get("content-type") != "" {
			x.writeHeader(d.Code)
			n, _ := io.WriteString(x.w, d.Body)
			x.rec.bytesOut += int64(n)
			return true
		}
		x.localReply(d.Code, d.Body)
		return true
	}
	if d.FailedOpen {
		f.count(x, "failure_mode_allowed")
	} else {
		f.count(x, "ok")
	}
	edited := len(d.SetHeaders)+len(d.AppendHeaders)+len(d.RemoveHeaders) > 0
	for _, hv := range d.SetHeaders {
		r.Header.Set(hv.Key, hv.Value)
	}
	for _, hv := range d.AppendHeaders {
		r.Header.Add(hv.Key, hv.Value)
	}
	for _, k := range d.RemoveHeaders {
		r.Header.Del(k)
	}
	x.sec.responseHeaders = append(x.sec.responseHeaders, d.ResponseHeaders...)
	if edited && f.clearRouteCache && x.vh != nil {
		x.route = matchRoute(x.vh, r, r.URL.EscapedPath(), x.sec.metadata)
	}
	return false
}

// bufferBody reads the request body for the check (with_request_body); a
// body over the limit is refused 413 unless partial bodies are allowed. The
// request keeps its whole body for the upstream.
func (f *extAuthzFilter) bufferBody(x *exchange, req *extauthz.Request, b *extauthz.BodySettings) bool {
	r := x.r
	buf, err := io.ReadAll(io.LimitReader(r.Body, int64(b.MaxBytes)+1))
	if err != nil && !errors.Is(err, io.EOF) {
		x.rec.flags |= flagDC
		x.reset = true
		return false
	}
	if len(buf) > int(b.MaxBytes) {
		if !b.AllowPartial {
			x.rec.details = "request_payload_too_large"
			x.localReply(http.StatusRequestEntityTooLarge, "Payload Too Large")
			return false
		}
		req.Body, req.Partial = buf[:b.MaxBytes], true
	} else {
		req.Body = buf
	}
	r.Body = readCloser{Reader: io.MultiReader(bytes.NewReader(buf), r.Body), Closer: r.Body}
	return true
}

type readCloser struct {
	io.Reader
	io.Closer
}

func (f *extAuthzFilter) encode(x *exchange, h http.Header) {
	for _, hv := range x.sec.responseHeaders {
		h.Add(hv.Key, hv.Value)
	}
	x.sec.responseHeaders = nil // once, for several ext_authz filters
}

func (f *extAuthzFilter) count(x *exchange, outcome string) {
	prefix := ""
	if x.hcm != nil {
		prefix = x.hcm.StatPrefix
	}
	f.m.countExtAuthz(prefix, f.f.Config().StatPrefix, outcome)
}

// peerCertPEM is the peer's leaf certificate as URL-encoded PEM (Envoy's
// AttributeContext.Peer.certificate).
func peerCertPEM(r *http.Request, info *connInfo) string {
	var der []byte
	switch {
	case r.TLS != nil && len(r.TLS.PeerCertificates) > 0:
		der = r.TLS.PeerCertificates[0].Raw
	case info != nil && info.peerCert != nil:
		der = info.peerCert.Raw
	}
	if der == nil {
		return ""
	}
	return url.QueryEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
}

// clusterDialer reaches a host of a cluster of the snapshot in force, with
// the cluster's transport socket (mTLS to a meshed authorization service).
type clusterDialer struct{ p *Proxy }

func (d *clusterDialer) DialCluster(ctx context.Context, name string) (net.Conn, error) {
	s := d.p.snap.Load()
	if s == nil {
		return nil, errors.New("no configuration")
	}
	c := s.clusters[name]
	if c == nil {
		return nil, errors.New("cluster " + name + " not found")
	}
	h := c.pick(nil, "", false)
	if h == nil {
		return nil, errors.New("cluster " + name + " has no healthy endpoint")
	}
	return c.dialConn(ctx, c.poolFor(h), "tcp", h.addr)
}

// noDialer reaches nothing (a chain built without a proxy).
type noDialer struct{}

func (noDialer) DialCluster(context.Context, string) (net.Conn, error) {
	return nil, errors.New("no way to the cluster")
}

// countExtAuthz counts an ext_authz outcome (Envoy's ext_authz.ok, denied,
// error, failure_mode_allowed, disabled).
func (m *securityMetrics) countExtAuthz(statPrefix, filterPrefix, outcome string) {
	if m == nil || m.extAuthz == nil {
		return
	}
	m.extAuthz.WithLabelValues(statPrefix, filterPrefix, outcome).Inc()
}

func newExtAuthzMetrics(reg prometheus.Registerer) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "envoy_ext_authz_decisions_total",
		Help: "External authorization outcomes (ok, denied, error, failure_mode_allowed, disabled)."},
		[]string{"stat_prefix", "ext_authz_stat_prefix", "decision"})
	reg.MustRegister(v)
	return v
}

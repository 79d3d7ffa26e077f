package proxy

import (
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// Istio's names of the HTTP and TCP metrics, as istio.stats overrides name them.
const (
	statRequests    = "requests_total"
	statDuration    = "request_duration_milliseconds"
	statReqSize     = "request_bytes"
	statRespSize    = "response_bytes"
	statTCPSent     = "tcp_sent_bytes_total"
	statTCPReceived = "tcp_received_bytes_total"
	statTCPOpened   = "tcp_connections_opened_total"
	statTCPClosed   = "tcp_connections_closed_total"
)

// customMetrics records the standard HTTP metrics of HCMs whose istio.stats
// overrides change their tags: one vector per metric and tag set, collected
// beside the standard vectors without a fixed descriptor (an unchecked
// collector), so one family holds series with different tags, as Envoy's
// stats do.
type customMetrics struct {
	mu       sync.Mutex
	counters map[string]*prometheus.CounterVec
	hists    map[string]*prometheus.HistogramVec
}

var _ prometheus.Collector = (*customMetrics)(nil)

func newCustomMetrics() *customMetrics {
	return &customMetrics{counters: map[string]*prometheus.CounterVec{}, hists: map[string]*prometheus.HistogramVec{}}
}

// Describe sends nothing: the collector is unchecked.
func (c *customMetrics) Describe(chan<- *prometheus.Desc) {}

func (c *customMetrics) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range c.counters {
		v.Collect(ch)
	}
	for _, v := range c.hists {
		v.Collect(ch)
	}
}

// counter returns the vector of a metric with the tags names; sig is
// name and names as one string (metricPlan.sig).
func (c *customMetrics) counter(sig, name, help string, names []string) *prometheus.CounterVec {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.counters[sig]
	if v == nil {
		v = prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, names)
		c.counters[sig] = v
	}
	return v
}

// histogram is counter for a histogram metric.
func (c *customMetrics) histogram(sig, name, help string, buckets []float64, names []string) *prometheus.HistogramVec {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.hists[sig]
	if v == nil {
		v = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, names)
		c.hists[sig] = v
	}
	return v
}

// httpStats are the HTTP metrics in the order of a statsPlan.
var httpStats = [...]string{statRequests, statDuration, statReqSize, statRespSize}

// statsPlan is how an istio.stats config records each HTTP metric
// (httpStats order), derived once per config (IstioStats.Memo).
type statsPlan [len(httpStats)]metricPlan

// metricPlan is one metric's part of a statsPlan: dropped, the standard
// series (names nil), or its own vector whose tags are the standard ones
// at keep (those neither removed nor replaced), then the dimensions (sorted
// by name).
type metricPlan struct {
	drop  bool
	keep  []int
	dims  []xdsconfig.MetricDimension
	names []string
	sig   string // "istio_"+metric and names, the customMetrics key
}

func planStats(st *xdsconfig.IstioStats) *statsPlan {
	var p statsPlan
	for i, metric := range httpStats {
		p[i] = planMetric(st.For(metric), metric, requestLabels)
	}
	return &p
}

// planMetric is how metric, whose standard tags are labels, is recorded
// under override o (nil: the standard series).
func planMetric(o *xdsconfig.MetricOverride, metric string, labels []string) metricPlan {
	var mp metricPlan
	switch {
	case o != nil && o.Drop:
		mp.drop = true
	case o == nil || (len(o.Remove) == 0 && len(o.Dimensions) == 0):
	default:
		for j, n := range labels {
			if !slices.Contains(o.Remove, n) && !slices.ContainsFunc(o.Dimensions, func(d xdsconfig.MetricDimension) bool { return d.Name == n }) {
				mp.keep = append(mp.keep, j)
				mp.names = append(mp.names, n)
			}
		}
		for _, d := range o.Dimensions {
			mp.names = append(mp.names, d.Name)
		}
		mp.dims = o.Dimensions
		mp.sig = "istio_" + metric + "|" + strings.Join(mp.names, ",")
	}
	return mp
}

// tcpStats are the TCP metrics in the order of a tcpPlan (and tcpSeries).
var tcpStats = [...]string{statTCPSent, statTCPReceived, statTCPOpened, statTCPClosed}

// tcpPlan is statsPlan for the TCP metrics of a chain's istio.stats
// network filter.
type tcpPlan [len(tcpStats)]metricPlan

func planTCP(st *xdsconfig.IstioStats) *tcpPlan {
	var p tcpPlan
	for i, metric := range tcpStats {
		p[i] = planMetric(st.For(metric), metric, tcpLabels)
	}
	return &p
}

// tcpFor returns the counters of a connection: the standard series, or as
// its chain's istio.stats filter says (st non-nil; vars gives the CEL
// attributes of its tag expressions, evaluated once per connection).
func (m *metrics) tcpFor(r *record, st *xdsconfig.IstioStats, vars func() map[string]any) *tcpSeries {
	if st == nil {
		return m.tcp(r)
	}
	plan := st.Memo(func() any { return planTCP(st) }).(*tcpPlan)
	k := m.tcpKey(r)
	var in map[string]any
	out := &tcpSeries{}
	slots := [...]*counter{&out.sent, &out.received, &out.opened, &out.closed}
	std := [...]*prometheus.CounterVec{m.tcpSent, m.tcpRecv, m.tcpOpen, m.tcpClose}
	for i := range plan {
		mp := &plan[i]
		switch {
		case mp.drop:
			*slots[i] = noCounter{}
		case mp.names == nil:
			*slots[i] = std[i].WithLabelValues(k[:len(tcpLabels)]...)
		default:
			*slots[i] = m.custom.counter(mp.sig, "istio_"+tcpStats[i], helpTCP[i], mp.names).WithLabelValues(mp.values(&k, &in, vars)...)
		}
	}
	return out
}

// tcpVars are the CEL attributes of a TCP connection for tag expressions:
// connection.mtls, source.* (the downstream peer), destination.* (where the
// connection was going: its original destination, not the proxy's socket),
// upstream.address; request.* and response.* are absent.
func tcpVars(rec *record, src, dst netip.AddrPort) map[string]any {
	addr := func(ap netip.AddrPort) any {
		if !ap.IsValid() {
			return emptyAttrs()
		}
		return map[string]any{"address": ap.Addr().String(), "port": int64(ap.Port())}
	}
	return map[string]any{
		"request":     emptyAttrs(),
		"response":    emptyAttrs(),
		"connection":  map[string]any{"mtls": rec.peer != nil && rec.peer.principal != ""},
		"source":      addr(src),
		"destination": addr(dst),
		"upstream":    map[string]any{"address": rec.upstreamHost},
	}
}

// values are the tag values of a request's series under mp: the kept
// standard ones, then the dimensions with their CEL values; a dimension
// that does not evaluate to a string is "unknown", as Istio's stats filter
// reports it. *in is vars(), made on first use and shared by the metrics.
func (mp *metricPlan) values(k *labelKey, in *map[string]any, vars func() map[string]any) []string {
	out := make([]string, 0, len(mp.names))
	for _, j := range mp.keep {
		out = append(out, k[j])
	}
	for _, d := range mp.dims {
		if *in == nil {
			*in = vars()
		}
		v := "unknown"
		if res, _, err := d.Program.Eval(*in); err == nil {
			if s, ok := res.Value().(string); ok {
				v = s
			}
		}
		out = append(out, v)
	}
	return out
}

// observeOverridden records a request under its HCM's istio.stats config:
// a dropped metric is not recorded, an untouched one goes to the standard
// series, one with changed tags to its own vector.
func (m *metrics) observeOverridden(r *record, st *xdsconfig.IstioStats, vars func() map[string]any) {
	plan := st.Memo(func() any { return planStats(st) }).(*statsPlan)
	k := m.labels(r)
	lv := k[:]
	var in map[string]any
	for i := range plan {
		mp := &plan[i]
		if mp.drop {
			continue
		}
		metric := httpStats[i]
		if mp.names == nil {
			// The standard series, made only for the metrics recorded
			// (a dropped one must not appear at zero).
			switch metric {
			case statRequests:
				m.requests.WithLabelValues(lv...).Inc()
			case statDuration:
				m.duration.WithLabelValues(lv...).Observe(float64(r.duration.Microseconds()) / 1000)
			case statReqSize:
				m.reqSize.WithLabelValues(lv...).Observe(float64(r.bytesIn))
			case statRespSize:
				m.respSize.WithLabelValues(lv...).Observe(float64(r.bytesOut))
			}
			continue
		}
		values := mp.values(&k, &in, vars)
		name := "istio_" + metric
		switch metric {
		case statRequests:
			m.custom.counter(mp.sig, name, helpRequests, mp.names).WithLabelValues(values...).Inc()
		case statDuration:
			m.custom.histogram(mp.sig, name, helpDuration, durationBuckets, mp.names).WithLabelValues(values...).
				Observe(float64(r.duration.Microseconds()) / 1000)
		case statReqSize:
			m.custom.histogram(mp.sig, name, helpReqSize, bytesBuckets, mp.names).WithLabelValues(values...).Observe(float64(r.bytesIn))
		case statRespSize:
			m.custom.histogram(mp.sig, name, helpRespSize, bytesBuckets, mp.names).WithLabelValues(values...).Observe(float64(r.bytesOut))
		}
	}
}

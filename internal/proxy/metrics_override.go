package proxy

import (
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// Istio's names of the HTTP metrics, as istio.stats overrides name them.
const (
	statRequests = "requests_total"
	statDuration = "request_duration_milliseconds"
	statReqSize  = "request_bytes"
	statRespSize = "response_bytes"
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

func (c *customMetrics) counter(name, help string, labels []string) *prometheus.CounterVec {
	sig := name + "|" + strings.Join(labels, ",")
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.counters[sig]
	if v == nil {
		v = prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		c.counters[sig] = v
	}
	return v
}

func (c *customMetrics) histogram(name, help string, buckets []float64, labels []string) *prometheus.HistogramVec {
	sig := name + "|" + strings.Join(labels, ",")
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.hists[sig]
	if v == nil {
		v = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
		c.hists[sig] = v
	}
	return v
}

// overriddenLabels are the tag names and values of a request's series under
// an override: the standard tags less those removed or replaced, then the
// dimensions (sorted by name) with their CEL values; a dimension that does
// not evaluate to a string is "unknown", as Istio's stats filter reports it.
func overriddenLabels(k labelKey, o *xdsconfig.MetricOverride, vars func() map[string]any) (names, values []string) {
	replaced := func(n string) bool {
		return slices.Contains(o.Remove, n) || slices.ContainsFunc(o.Dimensions, func(d xdsconfig.MetricDimension) bool { return d.Name == n })
	}
	for i, n := range requestLabels {
		if !replaced(n) {
			names, values = append(names, n), append(values, k[i])
		}
	}
	var in map[string]any
	for _, d := range o.Dimensions {
		if in == nil {
			in = vars()
		}
		v := "unknown"
		if out, _, err := d.Program.Eval(in); err == nil {
			if s, ok := out.Value().(string); ok {
				v = s
			}
		}
		names, values = append(names, d.Name), append(values, v)
	}
	return names, values
}

// observeOverridden records a request under its HCM's istio.stats config:
// a dropped metric is not recorded, an untouched one goes to the standard
// series, one with changed tags to its own vector.
func (m *metrics) observeOverridden(r *record, st *xdsconfig.IstioStats, vars func() map[string]any) {
	k := m.labels(r)
	lv := k[:]
	for _, metric := range []string{statRequests, statDuration, statReqSize, statRespSize} {
		o := st.For(metric)
		if o != nil && o.Drop {
			continue
		}
		if o == nil || (len(o.Remove) == 0 && len(o.Dimensions) == 0) {
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
		names, values := overriddenLabels(k, o, vars)
		switch metric {
		case statRequests:
			m.custom.counter("istio_"+metric, helpRequests, names).WithLabelValues(values...).Inc()
		case statDuration:
			m.custom.histogram("istio_"+metric, helpDuration, durationBuckets, names).WithLabelValues(values...).
				Observe(float64(r.duration.Microseconds()) / 1000)
		case statReqSize:
			m.custom.histogram("istio_"+metric, helpReqSize, bytesBuckets, names).WithLabelValues(values...).Observe(float64(r.bytesIn))
		case statRespSize:
			m.custom.histogram("istio_"+metric, helpRespSize, bytesBuckets, names).WithLabelValues(values...).Observe(float64(r.bytesOut))
		}
	}
}

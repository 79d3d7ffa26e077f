package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Istio's standard metric names the dashboard reads.
const (
	metricRequests = "istio_requests_total"
	metricDuration = "istio_request_duration_milliseconds"
	metricTCPSent  = "istio_tcp_sent_bytes_total"
	metricTCPRecv  = "istio_tcp_received_bytes_total"
	metricTCPOpen  = "istio_tcp_connections_opened_total"
)

// key is one series of istio_requests_total as the dashboard aggregates it
// (the labels it shows; request_protocol and grpc_response_status are summed).
type key struct {
	reporter                                      string
	srcWorkload, srcNamespace, srcApp, srcVersion string
	dstWorkload, dstNamespace, dstApp, dstVersion string
	dstService, dstServiceName, dstServiceNS      string
	code, flags, security                         string
	// tcp marks the series of the TCP metrics (no code).
	tcp bool
}

// counts are the cumulative counters of one key: requests and the duration
// histogram (cumulative bucket counts for bounds, in milliseconds).
type counts struct {
	requests float64
	bounds   []float64
	buckets  []float64
	// bytes (sent and received) and conns (opened) of the TCP metrics.
	bytes, conns float64
}

// empty reports whether c counts nothing.
func (c counts) empty() bool { return c.requests == 0 && c.bytes == 0 && c.conns == 0 }

func (c counts) clone() counts {
	c.buckets = slices.Clone(c.buckets)
	return c
}

// add adds d's counters (bounds must match, else only requests are added).
func (c *counts) add(d counts) {
	c.requests += d.requests
	c.bytes += d.bytes
	c.conns += d.conns
	if len(d.buckets) == 0 {
		return
	}
	if len(c.buckets) == 0 {
		c.bounds, c.buckets = d.bounds, slices.Clone(d.buckets)
		return
	}
	if !slices.Equal(c.bounds, d.bounds) {
		return
	}
	for i := range c.buckets {
		c.buckets[i] += d.buckets[i]
	}
}

// sub returns c - prev, treating a decrease as a counter reset (the proxy
// restarted): the whole of c is new then.
func (c counts) sub(prev counts) counts {
	if c.requests < prev.requests || c.bytes < prev.bytes || c.conns < prev.conns || (len(prev.buckets) > 0 && !slices.Equal(c.bounds, prev.bounds)) {
		return c.clone()
	}
	out := counts{requests: c.requests - prev.requests, bounds: c.bounds, bytes: c.bytes - prev.bytes, conns: c.conns - prev.conns}
	if len(c.buckets) > 0 {
		out.buckets = make([]float64, len(c.buckets))
		for i := range c.buckets {
			p := 0.0
			if i < len(prev.buckets) {
				p = prev.buckets[i]
			}
			out.buckets[i] = max(c.buckets[i]-p, 0)
		}
	}
	return out
}

// sample is the mesh-wide totals after one scrape round.
type sample struct {
	at     time.Time
	totals map[key]counts
}

// target is one proxy's metrics endpoint and what was last read from it.
type target struct {
	// name is the proxy's name; recent its last /debug/failures answer.
	name     string
	recent   []RecentFailure
	prev     map[key]counts
	seen     time.Time
	lastErr  string
	lastOK   time.Time
	attempts int
}

// collector scrapes proxies and keeps monotonic mesh-wide totals per key,
// one sample per round for the retention period. It is safe for concurrent use.
type collector struct {
	client    *http.Client
	retention time.Duration

	mu      sync.Mutex
	targets map[string]*target // by proxy id
	totals  map[key]counts
	samples []sample
}

func newCollector(client *http.Client, retention time.Duration) *collector {
	return &collector{client: client, retention: retention, targets: map[string]*target{}, totals: map[key]counts{}}
}

// round scrapes every proxy with a stats address concurrently and records a sample at now.
func (c *collector) round(ctx context.Context, proxies []Proxy, now time.Time) {
	type result struct {
		id, name string
		vals     map[key]counts
		recent   []RecentFailure
		err      error
	}
	results := make(chan result, len(proxies))
	var wg sync.WaitGroup
	for _, p := range proxies {
		if p.StatsAddress == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			vals, err := c.scrape(ctx, p.StatsAddress)
			var recent []RecentFailure
			if err == nil {
				recent = c.failures(ctx, p.StatsAddress) // best effort: an older proxy has none
			}
			results <- result{id: p.ID, name: p.Name, vals: vals, recent: recent, err: err}
		}()
	}
	wg.Wait()
	close(results)

	c.mu.Lock()
	defer c.mu.Unlock()
	for r := range results {
		t := c.targets[r.id]
		if t == nil {
			t = &target{}
			c.targets[r.id] = t
		}
		t.seen, t.attempts = now, t.attempts+1
		if r.err != nil {
			t.lastErr = r.err.Error()
			continue
		}
		t.lastErr, t.lastOK = "", now
		t.name, t.recent = r.name, r.recent
		for k, cur := range r.vals {
			d := cur.sub(t.prev[k])
			if d.empty() {
				continue
			}
			tot := c.totals[k]
			tot = tot.clone()
			tot.add(d)
			c.totals[k] = tot
		}
		t.prev = r.vals
	}
	// Proxies gone for longer than the retention are forgotten.
	for id, t := range c.targets {
		if now.Sub(t.seen) > c.retention {
			delete(c.targets, id)
		}
	}
	snap := make(map[key]counts, len(c.totals))
	for k, v := range c.totals {
		snap[k] = v // values are never modified in place (cloned before add)
	}
	c.samples = append(c.samples, sample{at: now, totals: snap})
	cut := 0
	for cut < len(c.samples)-2 && now.Sub(c.samples[cut].at) > c.retention {
		cut++
	}
	c.samples = slices.Delete(c.samples, 0, cut)
}

// scrapeStatus returns the last scrape error of a proxy ("" when fine) and
// whether it was scraped at all.
func (c *collector) scrapeStatus(id string) (lastErr string, scraped bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.targets[id]
	if !ok {
		return "", false
	}
	return t.lastErr, !t.lastOK.IsZero()
}

// maxRecent is how many recent failed requests the view lists.
const maxRecent = 15

// recentFailures returns the failed requests the proxies last reported,
// newest first, each named by its proxy.
func (c *collector) recentFailures() []RecentFailure {
	c.mu.Lock()
	var out []RecentFailure
	for _, t := range c.targets {
		for _, f := range t.recent {
			f.Proxy = t.name
			out = append(out, f)
		}
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b RecentFailure) int { return b.Time.Compare(a.Time) })
	if len(out) > maxRecent {
		out = out[:maxRecent]
	}
	return out
}

// failures reads a proxy's recent failed requests (GET /debug/failures on
// its stats address, the access log records of its last failures); nil
// when it cannot.
func (c *collector) failures(ctx context.Context, addr string) []RecentFailure {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/debug/failures", nil)
	if err != nil {
		return nil
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	var out []RecentFailure
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return nil
	}
	return out
}

// history returns the samples recorded so far, oldest first.
func (c *collector) history() []sample {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.samples)
}

// scrape reads one proxy's /stats/prometheus and sums its series by key.
func (c *collector) scrape(ctx context.Context, addr string) (map[key]counts, error) {
	url := "http://" + addr + "/stats/prometheus"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	return parseFamilies(fams), nil
}

// parseFamilies sums istio_requests_total and the duration histogram by
// key, and the TCP metrics' bytes and opened connections.
func parseFamilies(fams map[string]*dto.MetricFamily) map[key]counts {
	out := map[key]counts{}
	if f := fams[metricRequests]; f != nil {
		for _, m := range f.GetMetric() {
			k := keyOf(m.GetLabel())
			c := out[k]
			c.requests += m.GetCounter().GetValue()
			out[k] = c
		}
	}
	if f := fams[metricDuration]; f != nil {
		for _, m := range f.GetMetric() {
			h := m.GetHistogram()
			if h == nil {
				continue
			}
			k := keyOf(m.GetLabel())
			c := out[k]
			bounds := make([]float64, 0, len(h.GetBucket()))
			buckets := make([]float64, 0, len(h.GetBucket()))
			for _, b := range h.GetBucket() {
				bounds = append(bounds, b.GetUpperBound())
				buckets = append(buckets, float64(b.GetCumulativeCount()))
			}
			c.add(counts{bounds: bounds, buckets: buckets})
			out[k] = c
		}
	}
	for _, name := range []string{metricTCPSent, metricTCPRecv, metricTCPOpen} {
		f := fams[name]
		if f == nil {
			continue
		}
		for _, m := range f.GetMetric() {
			k := keyOf(m.GetLabel())
			k.tcp = true
			c := out[k]
			if name == metricTCPOpen {
				c.conns += m.GetCounter().GetValue()
			} else {
				c.bytes += m.GetCounter().GetValue()
			}
			out[k] = c
		}
	}
	return out
}

func keyOf(labels []*dto.LabelPair) key {
	var k key
	for _, l := range labels {
		v := l.GetValue()
		switch l.GetName() {
		case "reporter":
			k.reporter = v
		case "source_workload":
			k.srcWorkload = v
		case "source_workload_namespace":
			k.srcNamespace = v
		case "source_app":
			k.srcApp = v
		case "source_version":
			k.srcVersion = v
		case "destination_workload":
			k.dstWorkload = v
		case "destination_workload_namespace":
			k.dstNamespace = v
		case "destination_app":
			k.dstApp = v
		case "destination_version":
			k.dstVersion = v
		case "destination_service":
			k.dstService = v
		case "destination_service_name":
			k.dstServiceName = v
		case "destination_service_namespace":
			k.dstServiceNS = v
		case "response_code":
			k.code = v
		case "response_flags":
			k.flags = v
		case "connection_security_policy":
			k.security = v
		}
	}
	return k
}

package dashboard

import (
	"math"
	"strconv"
	"time"
)

// Health thresholds on the share of 5xx responses, Kiali's defaults.
const (
	degradedAt = 0.1  // percent: >= is degraded
	failingAt  = 10.0 // percent: > is failing
)

// Health values of nodes and edges.
const (
	healthHealthy  = "healthy"
	healthDegraded = "degraded"
	healthFailing  = "failing"
	healthIdle     = "idle" // no requests in the window
)

// agg sums the requests of several keys over a window.
type agg struct {
	requests float64
	errors   float64 // 5xx, or no response at all (code 0)
	mtls     float64 // requests over mutual TLS (known from the destination's report)
	known    float64 // requests whose security policy the reporter knew
	hist     counts
	// tcpBytes and tcpConns are the TCP traffic (bytes both ways, opened connections).
	tcpBytes, tcpConns float64
	tcpMTLS, tcpKnown  float64 // connections over mutual TLS, and with a known policy
}

func (a *agg) add(k key, d counts) {
	if k.tcp {
		a.tcpBytes += d.bytes
		a.tcpConns += d.conns
		switch k.security {
		case "mutual_tls":
			a.tcpMTLS += d.conns
			a.tcpKnown += d.conns
		case "none":
			a.tcpKnown += d.conns
		}
		return
	}
	a.requests += d.requests
	if isError(k.code) {
		a.errors += d.requests
	}
	switch k.security {
	case "mutual_tls":
		a.mtls += d.requests
		a.known += d.requests
	case "none":
		a.known += d.requests
	}
	a.hist.add(counts{bounds: d.bounds, buckets: d.buckets})
}

// isError: a 5xx response, or none (code 0: the connection failed).
func isError(code string) bool {
	n, err := strconv.Atoi(code)
	return err == nil && (n >= 500 || n == 0)
}

// isFailure: an error, a 4xx, or any response flag.
func isFailure(k key) bool {
	n, err := strconv.Atoi(k.code)
	return isError(k.code) || (err == nil && n >= 400) || (k.flags != "" && k.flags != "-")
}

// Stats are the golden signals of a node, an edge or a time step.
type Stats struct {
	// Rate is requests per second.
	Rate float64 `json:"rate"`
	// ErrorPercent is the share of 5xx responses (and failed connections), in percent.
	ErrorPercent float64 `json:"errorPercent"`
	// P50 and P99 are latency percentiles in milliseconds (nil: no histogram data).
	P50 *float64 `json:"p50,omitempty"`
	P99 *float64 `json:"p99,omitempty"`
	// MTLSPercent is the share of requests over mutual TLS, in percent (nil: unknown).
	MTLSPercent *float64 `json:"mtlsPercent,omitempty"`
	// Health is healthy, degraded, failing or idle (Kiali's thresholds).
	Health string `json:"health"`
	// Requests is how many requests the window held.
	Requests float64 `json:"requests"`
	// TCPBytesRate is the TCP bytes per second, both ways (istio_tcp_sent_bytes_total
	// and istio_tcp_received_bytes_total); TCPConnRate the TCP connections opened per second.
	TCPBytesRate float64 `json:"tcpBytesRate,omitempty"`
	TCPConnRate  float64 `json:"tcpConnRate,omitempty"`
}

func (a *agg) stats(window time.Duration) Stats {
	s := Stats{Requests: a.requests, Health: healthIdle}
	if window <= 0 {
		return s
	}
	if a.tcpBytes > 0 || a.tcpConns > 0 {
		// TCP has no error rate: traffic is healthy, as Kiali shows it.
		s.TCPBytesRate, s.TCPConnRate, s.Health = a.tcpBytes/window.Seconds(), a.tcpConns/window.Seconds(), healthHealthy
		if a.tcpKnown > 0 && a.requests <= 0 {
			m := 100 * a.tcpMTLS / a.tcpKnown
			s.MTLSPercent = &m
		}
	}
	if a.requests <= 0 {
		return s
	}
	s.Rate = a.requests / window.Seconds()
	s.ErrorPercent = 100 * a.errors / a.requests
	switch {
	case s.ErrorPercent > failingAt:
		s.Health = healthFailing
	case s.ErrorPercent >= degradedAt:
		s.Health = healthDegraded
	default:
		s.Health = healthHealthy
	}
	if p, ok := quantile(0.5, a.hist); ok {
		s.P50 = &p
	}
	if p, ok := quantile(0.99, a.hist); ok {
		s.P99 = &p
	}
	if a.known > 0 {
		m := 100 * a.mtls / a.known
		s.MTLSPercent = &m
	}
	return s
}

// quantile estimates the q-quantile of a histogram as Prometheus's
// histogram_quantile does: the rank is q times the histogram's own count (its
// last, +Inf, bucket), interpolated linearly inside the bucket it falls in; a
// rank in the +Inf bucket gives the highest finite bound.
func quantile(q float64, h counts) (float64, bool) {
	n := len(h.buckets)
	if n == 0 || h.buckets[n-1] <= 0 {
		return 0, false
	}
	rank := q * h.buckets[n-1]
	lower, below := 0.0, 0.0
	for i, ub := range h.bounds {
		c := h.buckets[i]
		if c < rank {
			lower, below = ub, c
			continue
		}
		switch {
		case math.IsInf(ub, 1):
			return lower, i > 0
		case c == below:
			return ub, true
		}
		return lower + (ub-lower)*(rank-below)/(c-below), true
	}
	return lower, true // unreachable: the last bucket holds the whole count
}

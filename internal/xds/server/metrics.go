package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/bowline-mesh/bowline/internal/xds"
)

// metrics are the control plane's Prometheus metrics, with Istio's names
// where Istio has one (pilot_*), so existing dashboards work.
type metrics struct {
	reg *prometheus.Registry

	pushes          *prometheus.CounterVec   // pilot_xds_pushes{type}
	rejects         *prometheus.CounterVec   // pilot_total_xds_rejects{type}
	connected       prometheus.Gauge         // pilot_xds
	pushTime        *prometheus.HistogramVec // pilot_xds_push_time{type}
	convergence     prometheus.Histogram     // pilot_proxy_convergence_time
	debounceTime    prometheus.Histogram     // pilot_debounce_time
	inboundUpdates  *prometheus.CounterVec   // pilot_inbound_updates{type}
	configProblems  *prometheus.GaugeVec     // bowline_config_problems{severity}
	meshProblems    prometheus.Gauge         // bowline_mesh_problems
	generateErrors  prometheus.Counter       // bowline_xds_generate_errors_total
	rejectedClients prometheus.Counter       // bowline_xds_rejected_nodes_total
}

func newMetrics() *metrics {
	buckets := []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m := &metrics{
		reg: prometheus.NewRegistry(),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pilot_xds_pushes",
			Help: "xDS responses sent, by type."}, []string{"type"}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pilot_total_xds_rejects",
			Help: "xDS responses rejected (NACKed) by proxies, by type."}, []string{"type"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pilot_xds",
			Help: "xDS streams connected to this control plane."}),
		pushTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pilot_xds_push_time",
			Help: "Seconds from setting a proxy's new snapshot to sending the response, by type.", Buckets: buckets}, []string{"type"}),
		convergence: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pilot_proxy_convergence_time",
			Help: "Seconds from the first change of a debounced batch to the end of the push it caused.", Buckets: buckets}),
		debounceTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pilot_debounce_time",
			Help: "Seconds a change waited in debouncing before the push started.", Buckets: buckets}),
		inboundUpdates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pilot_inbound_updates",
			Help: "Changes received, by source (config, registry)."}, []string{"type"}),
		configProblems: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bowline_config_problems",
			Help: "Problems in the configuration read last, by severity."}, []string{"severity"}),
		meshProblems: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bowline_mesh_problems",
			Help: "Configuration the mesh model skipped (unresolvable references and the like)."}),
		generateErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "bowline_xds_generate_errors_total",
			Help: "Generator failures; the proxy kept its last config."}),
		rejectedClients: prometheus.NewCounter(prometheus.CounterOpts{Name: "bowline_xds_rejected_nodes_total",
			Help: "Streams closed because the node id or metadata was invalid."}),
	}
	m.reg.MustRegister(m.pushes, m.rejects, m.connected, m.pushTime, m.convergence, m.debounceTime,
		m.inboundUpdates, m.configProblems, m.meshProblems, m.generateErrors, m.rejectedClients,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// changeStatser is a Generator that counts how it produced the parts of
// its generations (MeshGenerator: xds.Cache.ChangeStats).
type changeStatser interface{ ChangeStats() xds.ChangeStats }

// addChangeStats registers bowline_xds_scope_generations_total{how} (a
// scope's outbound part built in full, or updated from the last mesh) and
// bowline_xds_inbound_generations_total{how} (a proxy's inbound part built,
// or kept), read from stats.
func (m *metrics) addChangeStats(stats func() xds.ChangeStats) {
	counter := func(name, help, how string, v func(xds.ChangeStats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: prometheus.Labels{"how": how}},
			func() float64 { return float64(v(stats())) })
	}
	const scopeHelp = "Outbound parts of sidecar scopes generated: built in full, or updated from the last mesh where a change touched them."
	const inboundHelp = "Inbound parts of sidecars generated: built, or kept from the last mesh because the change did not touch them."
	m.reg.MustRegister(
		counter("bowline_xds_scope_generations_total", scopeHelp, "built", func(s xds.ChangeStats) int64 { return s.ScopesBuilt }),
		counter("bowline_xds_scope_generations_total", scopeHelp, "updated", func(s xds.ChangeStats) int64 { return s.ScopesUpdated }),
		counter("bowline_xds_inbound_generations_total", inboundHelp, "built", func(s xds.ChangeStats) int64 { return s.InboundBuilt }),
		counter("bowline_xds_inbound_generations_total", inboundHelp, "kept", func(s xds.ChangeStats) int64 { return s.InboundKept }))
}

// metricType is the lower-case type label Istio uses ("cds", "eds", ...).
func metricType(typeURL string) string {
	s := shortType(typeURL)
	if len(s) == 3 {
		return string([]byte{s[0] | 0x20, s[1] | 0x20, s[2] | 0x20})
	}
	return s
}

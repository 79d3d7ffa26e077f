package xdsconfig

import (
	"fmt"
	"regexp"
	"slices"
	"sync"

	"cel.dev/cel-go/cel"
	"google.golang.org/protobuf/types/known/anypb"
	stats "istio.io/api/envoy/extensions/stats"

	"github.com/bowline-mesh/bowline/internal/telemetry"
)

// typeIstioStats is Istio's stats filter config (the istio.stats HTTP filter).
const typeIstioStats = "type.googleapis.com/stats.PluginConfig"

// IstioStats is the istio.stats filter of an HCM: which of Istio's standard
// metrics its requests are recorded in and with which tags. An HCM without
// it records every standard metric with the standard tags.
type IstioStats struct {
	// Metrics holds the override of each metric that has one, by Istio's
	// name without the istio_ prefix (requests_total, ...).
	Metrics map[string]*MetricOverride

	// memo is what its user derives from the config once (Memo).
	memoOnce sync.Once
	memo     any
}

// Memo returns build's result, calling build only on the first call: the
// proxy derives its recording plan from the config once, not per request.
func (s *IstioStats) Memo(build func() any) any {
	s.memoOnce.Do(func() { s.memo = build() })
	return s.memo
}

// MetricOverride is what istio.stats says of one metric.
type MetricOverride struct {
	// Drop: the metric is not recorded.
	Drop bool
	// Remove are standard tags left out.
	Remove []string
	// Dimensions are tags added or replaced, sorted by name.
	Dimensions []MetricDimension
}

// MetricDimension is one tag whose value a CEL expression gives.
type MetricDimension struct {
	Name    string
	Expr    string
	Program cel.Program
}

// For returns the override of a metric, nil when it has none.
func (s *IstioStats) For(metric string) *MetricOverride {
	if s == nil {
		return nil
	}
	return s.Metrics[metric]
}

// StatsMetrics are the metrics istio.stats names (Istio's, without the
// istio_ prefix) that Bowline's proxy records.
var StatsMetrics = []string{"requests_total", "request_duration_milliseconds", "request_bytes", "response_bytes",
	"tcp_sent_bytes_total", "tcp_received_bytes_total", "tcp_connections_opened_total", "tcp_connections_closed_total"}

var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

func unmarshalIstioStats(a *anypb.Any, path string) (*IstioStats, error) {
	pc := &stats.PluginConfig{}
	if err := a.UnmarshalTo(pc); err != nil {
		return nil, fmt.Errorf("field %s: %w", path, err)
	}
	if err := checkFields(pc, path, "debug", "max_peer_cache_size", "stat_prefix", "field_separator", "value_separator",
		"disable_host_header_fallback", "tcp_reporting_duration", "metrics", "reporter", "rotation_interval", "graceful_deletion_interval"); err != nil {
		return nil, err
	}
	if p := pc.GetStatPrefix(); p != "" && p != "istio" && p != "istio_" {
		return nil, fmt.Errorf("field %s.stat_prefix: %q unsupported (metrics are named istio_*)", path, p)
	}
	out := &IstioStats{Metrics: map[string]*MetricOverride{}}
	for i, mc := range pc.GetMetrics() {
		mp := fmt.Sprintf("%s.metrics[%d]", path, i)
		if err := checkFields(mc, mp, "dimensions", "name", "tags_to_remove", "drop"); err != nil {
			return nil, err
		}
		names := StatsMetrics
		if mc.GetName() != "" {
			if !slices.Contains(StatsMetrics, mc.GetName()) {
				return nil, fmt.Errorf("field %s.name: %q is not a standard metric Bowline records (one of %v)", mp, mc.GetName(), StatsMetrics)
			}
			names = []string{mc.GetName()}
		}
		var dims []MetricDimension
		keys := make([]string, 0, len(mc.GetDimensions()))
		for k := range mc.GetDimensions() {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if !labelNameRE.MatchString(k) {
				return nil, fmt.Errorf("field %s.dimensions[%s]: %q is not a Prometheus label name", mp, k, k)
			}
			expr := mc.GetDimensions()[k]
			prg, err := telemetry.CompileMetricTag(expr)
			if err != nil {
				return nil, fmt.Errorf("field %s.dimensions[%s]: %q: %v", mp, k, expr, err)
			}
			dims = append(dims, MetricDimension{Name: k, Expr: expr, Program: prg})
		}
		for _, k := range mc.GetTagsToRemove() {
			if !labelNameRE.MatchString(k) {
				return nil, fmt.Errorf("field %s.tags_to_remove: %q is not a Prometheus label name", mp, k)
			}
		}
		// Later entries refine earlier ones, as Istio applies them in order.
		for _, name := range names {
			o := out.Metrics[name]
			if o == nil {
				o = &MetricOverride{}
				out.Metrics[name] = o
			}
			if mc.GetDrop() {
				o.Drop = true
			}
			for _, k := range mc.GetTagsToRemove() {
				if !slices.Contains(o.Remove, k) {
					o.Remove = append(o.Remove, k)
				}
				o.Dimensions = slices.DeleteFunc(o.Dimensions, func(d MetricDimension) bool { return d.Name == k })
			}
			for _, d := range dims {
				o.Remove = slices.DeleteFunc(o.Remove, func(k string) bool { return k == d.Name })
				o.Dimensions = slices.DeleteFunc(o.Dimensions, func(e MetricDimension) bool { return e.Name == d.Name })
				o.Dimensions = append(o.Dimensions, d)
			}
			slices.SortFunc(o.Dimensions, func(a, b MetricDimension) int {
				if a.Name < b.Name {
					return -1
				}
				if a.Name > b.Name {
					return 1
				}
				return 0
			})
		}
	}
	return out, nil
}

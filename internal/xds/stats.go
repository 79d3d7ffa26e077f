package xds

import (
	"maps"
	"slices"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	stats "istio.io/api/envoy/extensions/stats"

	"github.com/bowline-mesh/bowline/internal/model"
)

// filterIstioStats is Istio's stats filter, configured with stats.PluginConfig.
const filterIstioStats = "istio.stats"

// statsFilter is the istio.stats HTTP filter for one traffic direction of
// the proxy, as istiod builds it from the Telemetry API's metrics: one
// MetricConfig per override (name "" for every metric; drop, tags_to_remove,
// dimensions as CEL), and a drop of every metric when no prometheus
// provider is chosen. nil when the metrics are the default (every standard
// metric with its standard tags), which Bowline's proxy records without
// the filter.
func (g *gen) statsFilter(outbound bool) *hcmv3.HttpFilter {
	if g.grpc {
		return nil
	}
	if g.metrics == nil {
		c := g.snap.Metrics(g.proxy)
		g.metrics = &c
	}
	spec := g.metrics.Server
	if outbound || g.proxy.Type == model.Router {
		spec = g.metrics.Client
	}
	if spec.Default() {
		return nil
	}
	cfg := &stats.PluginConfig{}
	if !spec.Prometheus {
		cfg.Metrics = []*stats.MetricConfig{{Drop: true}}
	} else {
		for _, o := range spec.Overrides {
			cfg.Metrics = append(cfg.Metrics, &stats.MetricConfig{Name: o.Metric, Drop: o.Drop,
				TagsToRemove: slices.Clone(o.Remove), Dimensions: maps.Clone(o.Upsert)})
		}
	}
	return &hcmv3.HttpFilter{Name: filterIstioStats, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(cfg)}}
}

// withStats puts the stats filter, when there is one, before the router
// (the last filter).
func (g *gen) withStats(fs []*hcmv3.HttpFilter, outbound bool) []*hcmv3.HttpFilter {
	sf := g.statsFilter(outbound)
	if sf == nil || len(fs) == 0 {
		return fs
	}
	n := len(fs) - 1
	return append(fs[:n:n], sf, fs[n])
}

package xds

import (
	"maps"
	"slices"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
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
	cfg := g.statsConfig(outbound)
	if cfg == nil {
		return nil
	}
	return &hcmv3.HttpFilter{Name: filterIstioStats, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(cfg)}}
}

// tcpFilters are a TCP filter chain's last filters: the istio.stats network
// filter, when the metrics are not the default, then tcp_proxy. As in
// istiod the network filter takes the same stats.PluginConfig as the HTTP
// one; a proxy applies its TCP metrics' part (istio_tcp_*, every metric).
func (g *gen) tcpFilters(tp *tcpproxyv3.TcpProxy, outbound bool) []*listenerv3.Filter {
	if cfg := g.statsConfig(outbound); cfg != nil {
		return []*listenerv3.Filter{{Name: filterIstioStats, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(cfg)}}, tcpProxyFilter(tp)}
	}
	return []*listenerv3.Filter{tcpProxyFilter(tp)}
}

// statsConfig is the istio.stats config of one direction, nil for the
// default metrics.
func (g *gen) statsConfig(outbound bool) *stats.PluginConfig {
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
	return cfg
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

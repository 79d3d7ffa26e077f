package xdsconfig

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestPanicAndSuccessRate: healthy_panic_threshold defaults to Envoy's 50%
// and is taken as given (istiod's 0 disables it); success-rate ejection is
// on with Envoy's defaults unless enforcing_success_rate is 0, as istiod
// sets it; gateway-failure ejection needs its enforcing percentage.
func TestPanicAndSuccessRate(t *testing.T) {
	eds := func(c *clusterv3.Cluster) *clusterv3.Cluster {
		c.Name = "c"
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
		c.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}}
		return c
	}
	cases := []struct {
		name    string
		in      *clusterv3.Cluster
		panic   float64
		sr      *SuccessRateEjection
		gateway uint32
	}{
		{"defaults", eds(&clusterv3.Cluster{}), 50, nil, 0},
		{"istiod's panic threshold", eds(&clusterv3.Cluster{CommonLbConfig: &clusterv3.Cluster_CommonLbConfig{
			HealthyPanicThreshold: &typev3.Percent{Value: 0}}}), 0, nil, 0},
		{"minHealthPercent 30", eds(&clusterv3.Cluster{CommonLbConfig: &clusterv3.Cluster_CommonLbConfig{
			HealthyPanicThreshold: &typev3.Percent{Value: 30}}}), 30, nil, 0},
		{"outlier detection with Envoy's defaults", eds(&clusterv3.Cluster{OutlierDetection: &clusterv3.OutlierDetection{}}),
			50, &SuccessRateEjection{Enforcing: 100, MinimumHosts: 5, RequestVolume: 100, StdevFactor: 1900}, 0},
		{"success rate tuned", eds(&clusterv3.Cluster{OutlierDetection: &clusterv3.OutlierDetection{
			EnforcingSuccessRate: wrapperspb.UInt32(40), SuccessRateMinimumHosts: wrapperspb.UInt32(2),
			SuccessRateRequestVolume: wrapperspb.UInt32(10), SuccessRateStdevFactor: wrapperspb.UInt32(1000)}}),
			50, &SuccessRateEjection{Enforcing: 40, MinimumHosts: 2, RequestVolume: 10, StdevFactor: 1000}, 0},
		{"istiod's outlier detection", eds(&clusterv3.Cluster{OutlierDetection: &clusterv3.OutlierDetection{
			EnforcingSuccessRate: wrapperspb.UInt32(0), ConsecutiveGatewayFailure: wrapperspb.UInt32(3),
			EnforcingConsecutiveGatewayFailure: wrapperspb.UInt32(100)}}), 50, nil, 3},
		{"gateway failures not enforced", eds(&clusterv3.Cluster{OutlierDetection: &clusterv3.OutlierDetection{
			EnforcingSuccessRate: wrapperspb.UInt32(0), ConsecutiveGatewayFailure: wrapperspb.UInt32(3)}}), 50, nil, 0},
		{"gateway failures enforced at the default count", eds(&clusterv3.Cluster{OutlierDetection: &clusterv3.OutlierDetection{
			EnforcingSuccessRate: wrapperspb.UInt32(0), EnforcingConsecutiveGatewayFailure: wrapperspb.UInt32(100)}}), 50, nil, 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := UnmarshalCluster(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if c.PanicThreshold != tc.panic {
				t.Errorf("panic threshold %v, want %v", c.PanicThreshold, tc.panic)
			}
			var sr *SuccessRateEjection
			var gw uint32
			if c.Outlier != nil {
				sr, gw = c.Outlier.SuccessRate, c.Outlier.ConsecutiveGatewayFailure
			}
			if (sr == nil) != (tc.sr == nil) || (sr != nil && *sr != *tc.sr) {
				t.Errorf("success rate %+v, want %+v", sr, tc.sr)
			}
			if gw != tc.gateway {
				t.Errorf("consecutive gateway failures %d, want %d", gw, tc.gateway)
			}
		})
	}
}

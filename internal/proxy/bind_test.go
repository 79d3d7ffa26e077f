package proxy_test

import (
	"io"
	"net"
	"runtime"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
)

// TestUpstreamBindSource: a cluster's upstream_bind_config makes upstream
// connections come from its source address, as Istio's
// InboundPassthroughCluster comes from 127.0.0.6 (which the pod's iptables
// never capture).
func TestUpstreamBindSource(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("binding 127.0.0.6 needs Linux's 127.0.0.0/8 on lo")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			_, _ = io.WriteString(c, "from "+host)
			c.Close()
		}
	}()
	lp := freePort(t)
	static := clusterWith("passthrough", func(c *clusterv3.Cluster) {
		c.ClusterDiscoveryType, c.EdsClusterConfig = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}, nil
		c.LoadAssignment = cla("passthrough", ln.Addr().String())
		c.UpstreamBindConfig = &corev3.BindConfig{SourceAddress: &corev3.SocketAddress{Address: "127.0.0.6"}}
	})
	newEnv(t, resources([]types.Resource{listenerOf(t, "tcp", "127.0.0.1", lp, true, tcpFilter(t, "passthrough"))},
		nil, []types.Resource{static}, nil))
	c := dialTCP(t, hostPort(lp))
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || strings.TrimSpace(string(got)) != "from 127.0.0.6" {
		t.Fatalf("upstream saw %q (%v), want a connection from 127.0.0.6", got, err)
	}
}

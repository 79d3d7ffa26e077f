package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// envoyWindow is Envoy's default HTTP/2 stream and connection window.
const envoyWindow = 256 << 20

// client is a simulated Envoy: SotW ADS, CDS and LDS wildcard, then EDS and
// RDS by the names those carry, ACKing every response.
type client struct {
	id   string
	node identity
	// probe, when set, is the EDS cluster and endpoint address whose
	// load-balancing weight the churn run watches.
	probeCluster, probeAddr string

	mu        sync.Mutex
	rdsAcks   int       // RDS responses ACKed
	lastAck   time.Time // when the last RDS ACK was sent
	resources int       // resources received
	eds       int       // EDS responses received
	// probeSeen[w] is when the probe endpoint was first seen with weight >= w.
	probeSeen []time.Time
}

func (c *client) edsCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.eds
}

// probeAt returns when the client first saw the probe with weight >= w.
func (c *client) probeAt(w int) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if w < len(c.probeSeen) && !c.probeSeen[w].IsZero() {
		return c.probeSeen[w], true
	}
	return time.Time{}, false
}

func (c *client) state() (int, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rdsAcks, c.lastAck
}

// run connects (its own connection, as every Envoy has) and streams until ctx ends.
func (c *client) run(ctx context.Context, addr string) error {
	// Envoy's HTTP/2 windows (initial_stream_window_size and
	// initial_connection_window_size default to 256 MiB): a response is
	// not held back for WINDOW_UPDATEs as gRPC-Go's 64 KiB start would.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30)),
		grpc.WithInitialWindowSize(envoyWindow), grpc.WithInitialConnWindowSize(envoyWindow))
	if err != nil {
		return err
	}
	defer conn.Close()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	node := &core.Node{Id: c.id, Metadata: c.node.nodeMetadata()}
	if err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType}); err != nil {
		return err
	}
	if err := stream.Send(&discovery.DiscoveryRequest{TypeUrl: resourcev3.ListenerType}); err != nil {
		return err
	}
	// names holds what each type last subscribed to.
	names := map[string][]string{}
	for {
		resp, err := stream.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		typ := resp.GetTypeUrl()
		var follow string
		var want []string
		switch typ {
		case resourcev3.ClusterType:
			follow = resourcev3.EndpointType
			for _, a := range resp.GetResources() {
				var cl clusterv3.Cluster
				if err := a.UnmarshalTo(&cl); err != nil {
					return fmt.Errorf("cluster: %w", err)
				}
				if cl.GetType() == clusterv3.Cluster_EDS {
					want = append(want, cl.GetName())
				}
			}
		case resourcev3.EndpointType:
			if c.probeCluster != "" {
				if err := c.checkProbe(resp.GetResources()); err != nil {
					return err
				}
			}
		case resourcev3.ListenerType:
			follow = resourcev3.RouteType
			for _, a := range resp.GetResources() {
				var l listenerv3.Listener
				if err := a.UnmarshalTo(&l); err != nil {
					return fmt.Errorf("listener: %w", err)
				}
				for _, fc := range l.GetFilterChains() {
					for _, f := range fc.GetFilters() {
						var hcm hcmv3.HttpConnectionManager
						if f.GetTypedConfig().UnmarshalTo(&hcm) == nil && hcm.GetRds() != nil {
							want = append(want, hcm.GetRds().GetRouteConfigName())
						}
					}
				}
			}
		}
		ack := &discovery.DiscoveryRequest{TypeUrl: typ, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce(), ResourceNames: names[typ]}
		if err := stream.Send(ack); err != nil {
			return err
		}
		c.mu.Lock()
		c.resources += len(resp.GetResources())
		if typ == resourcev3.EndpointType {
			c.eds++
		}
		if typ == resourcev3.RouteType {
			c.rdsAcks++
			c.lastAck = time.Now()
		}
		c.mu.Unlock()
		if follow != "" && !equal(names[follow], want) {
			names[follow] = want
			if err := stream.Send(&discovery.DiscoveryRequest{TypeUrl: follow, ResourceNames: want}); err != nil {
				return err
			}
		}
	}
}

// checkProbe finds the probe cluster's assignment (reading only the
// cluster_name field of the others) and records its endpoint's weight.
func (c *client) checkProbe(rs []*anypb.Any) error {
	for _, a := range rs {
		if clusterName(a.GetValue()) != c.probeCluster {
			continue
		}
		var cla endpointv3.ClusterLoadAssignment
		if err := proto.Unmarshal(a.GetValue(), &cla); err != nil {
			return fmt.Errorf("endpoints: %w", err)
		}
		now := time.Now()
		for _, l := range cla.GetEndpoints() {
			for _, e := range l.GetLbEndpoints() {
				if e.GetEndpoint().GetAddress().GetSocketAddress().GetAddress() != c.probeAddr {
					continue
				}
				w := int(e.GetLoadBalancingWeight().GetValue())
				c.mu.Lock()
				for len(c.probeSeen) <= w {
					c.probeSeen = append(c.probeSeen, time.Time{})
				}
				for i := 0; i <= w; i++ {
					if c.probeSeen[i].IsZero() {
						c.probeSeen[i] = now
					}
				}
				c.mu.Unlock()
			}
		}
	}
	return nil
}

// clusterName reads field 1 (cluster_name) of a serialized ClusterLoadAssignment.
func clusterName(b []byte) string {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return ""
			}
			return string(v)
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return ""
		}
		b = b[n:]
	}
	return ""
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

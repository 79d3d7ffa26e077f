package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"
)

// client is a simulated Envoy: SotW ADS, CDS and LDS wildcard, then EDS and
// RDS by the names those carry, ACKing every response.
type client struct {
	id string

	mu        sync.Mutex
	rdsAcks   int       // RDS responses ACKed
	lastAck   time.Time // when the last RDS ACK was sent
	resources int       // resources received
}

func (c *client) state() (int, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rdsAcks, c.lastAck
}

// run streams until ctx ends.
func (c *client) run(ctx context.Context, conn *grpc.ClientConn) error {
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	md, _ := structpb.NewStruct(map[string]any{"NAMESPACE": "default", "WORKLOAD_NAME": "load-client", "INSTANCE_IPS": "10.250.0.1"})
	node := &core.Node{Id: c.id, Metadata: md}
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

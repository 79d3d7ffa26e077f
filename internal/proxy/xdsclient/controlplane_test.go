package xdsclient

import (
	"context"
	"fmt"
	"sync"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
)

// TestControlPlane runs the client against go-control-plane's own ADS server
// and snapshot cache, in both protocols: the client reaches a complete state
// from snapshot 1, NACKs snapshot 2 (a cluster the consumer rejects) with the
// rejection's text reaching the server while keeping snapshot 1's config,
// and accepts snapshot 3.
func TestControlPlane(t *testing.T) {
	tests := []struct {
		name string
		sotw bool
	}{
		{name: "delta"},
		{name: "sotw", sotw: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snaps := cache.NewSnapshotCache(true, cache.IDHash{}, nil)
			var mu sync.Mutex
			var nacks []string
			record := func(detail string) {
				mu.Lock()
				defer mu.Unlock()
				nacks = append(nacks, detail)
			}
			cb := serverv3.CallbackFuncs{
				StreamRequestFunc: func(_ int64, r *discoveryv3.DiscoveryRequest) error {
					if r.GetErrorDetail() != nil {
						record(r.GetErrorDetail().GetMessage())
					}
					return nil
				},
				StreamDeltaRequestFunc: func(_ int64, r *discoveryv3.DeltaDiscoveryRequest) error {
					if r.GetErrorDetail() != nil {
						record(r.GetErrorDetail().GetMessage())
					}
					return nil
				},
			}
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			addr := serveADS(t, func(s *grpc.Server) {
				discoveryv3.RegisterAggregatedDiscoveryServiceServer(s, serverv3.NewServer(ctx, snaps, cb))
			})
			push := func(version int, port uint32, extraClusters ...string) {
				t.Helper()
				clusters := []types.Resource{edsCluster("c1")}
				for _, n := range extraClusters {
					clusters = append(clusters, edsCluster(n))
				}
				snap, err := cache.NewSnapshot(fmt.Sprint(version), map[resource.Type][]types.Resource{
					resource.ListenerType: {listener(t, "l1", 15001, "r1")},
					resource.RouteType:    {routeConfig("r1", "c1")},
					resource.ClusterType:  clusters,
					resource.EndpointType: {cla("c1", port)},
				})
				if err != nil {
					t.Fatal(err)
				}
				if err := snaps.SetSnapshot(ctx, testNode.GetId(), snap); err != nil {
					t.Fatal(err)
				}
			}

			push(1, 9001)
			var cons consumer
			c := runClient(t, Config{Address: addr, ForceSotW: tt.sotw, Apply: cons.apply})
			waitFor(t, "snapshot 1", func() bool { st := c.State(); return st.Complete() && endpointPort(t, st, "c1") == 9001 })
			if !c.Connected() {
				t.Error("not connected after a complete state arrived")
			}

			push(2, 9002, rejectCluster)
			waitFor(t, "the nack of snapshot 2", func() bool { mu.Lock(); defer mu.Unlock(); return len(nacks) > 0 })
			mu.Lock()
			if nacks[0] != "cluster rejected: the proxy cannot serve it" {
				t.Errorf("the server saw nack %q", nacks[0])
			}
			mu.Unlock()
			if _, ok := c.State().Clusters()[rejectCluster]; ok {
				t.Error("the rejected cluster is in the client's state")
			}

			push(3, 9003)
			waitFor(t, "snapshot 3", func() bool { return endpointPort(t, c.State(), "c1") == 9003 })
			st := c.State()
			if !st.Complete() || len(st.Clusters()) != 1 || len(st.Listeners()) != 1 || len(st.Routes()) != 1 {
				t.Errorf("state after snapshot 3: complete=%v clusters=%d listeners=%d routes=%d",
					st.Complete(), len(st.Clusters()), len(st.Listeners()), len(st.Routes()))
			}
		})
	}
}

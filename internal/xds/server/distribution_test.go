package server

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
)

// pollUntil polls cond every few milliseconds for up to pollDeadline
// (generous: CI machines are loaded).
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(pollDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not after %s: %s", pollDeadline, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDistribution checks what Distribution says a proxy has: the config
// version of a push only once every response of it is acknowledged, the
// older version while a response is unanswered or rejected, and the new
// version for a change that sends the proxy nothing.
func TestDistribution(t *testing.T) {
	ts := startServer(t)
	c := dialADS(t, ts.xdsAddr)
	dist := func() uint64 { return ts.srv.Distribution()[testNodeID] }

	c.send(t, &discovery.DiscoveryRequest{Node: &core.Node{Id: testNodeID}, TypeUrl: resourcev3.ClusterType})
	r1 := c.recv(t)
	v1 := ts.srv.Store().Current().Version
	if got := dist(); got != 0 {
		t.Errorf("sent, not acknowledged: Distribution = %d, want 0", got)
	}
	c.send(t, &discovery.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, VersionInfo: r1.VersionInfo, ResponseNonce: r1.Nonce})
	pollUntil(t, fmt.Sprintf("acknowledged: Distribution = %d (want config version %d)", dist(), v1), func() bool { return dist() == v1 })

	// A change sending this proxy nothing (its clusters stay the same):
	// it has the new version as soon as the push is done.
	writeFile(t, filepath.Join(ts.dir, "vs.yaml"), "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec: {hosts: [r]}\n")
	pollUntil(t, "config with the VirtualService", func() bool { return len(ts.srv.Store().Current().Objects) == 2 })
	v2 := ts.srv.Store().Current().Version
	pollUntil(t, fmt.Sprintf("unchanged for the proxy: Distribution = %d (want %d)", dist(), v2), func() bool { return dist() == v2 })

	// A change it is sent: the old version until it acknowledges, and
	// while it rejects it.
	writeFile(t, filepath.Join(ts.dir, "b.yaml"), fmt.Sprintf(seYAML, "b"))
	r2 := c.recv(t)
	v3 := ts.srv.Store().Current().Version
	if got := dist(); got != v2 {
		t.Errorf("sent %s, not acknowledged: Distribution = %d, want the older %d", r2.VersionInfo, got, v2)
	}
	c.send(t, &discovery.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, VersionInfo: r1.VersionInfo, ResponseNonce: r2.Nonce,
		ErrorDetail: &statuspb.Status{Code: int32(codes.InvalidArgument), Message: "cluster b: unsupported field"}})
	pollUntil(t, "NACK recorded", func() bool { return ts.syncz(t).Proxies[0].Types[TypeCDS].NACK != "" })
	if got := dist(); got != v2 {
		t.Errorf("rejected: Distribution = %d, want the older %d", got, v2)
	}

	// The next change, accepted: the newest version.
	writeFile(t, filepath.Join(ts.dir, "c.yaml"), fmt.Sprintf(seYAML, "c"))
	r3 := c.recv(t)
	v4 := ts.srv.Store().Current().Version
	if v4 <= v3 {
		t.Fatalf("config version %d after c.yaml, want more than %d", v4, v3)
	}
	c.send(t, &discovery.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, VersionInfo: r3.VersionInfo, ResponseNonce: r3.Nonce})
	pollUntil(t, fmt.Sprintf("accepted: Distribution = %d (want %d)", dist(), v4), func() bool { return dist() == v4 })

	// A disconnected proxy is not counted.
	c.cancel()
	pollUntil(t, "disconnected proxy gone from Distribution", func() bool { _, ok := ts.srv.Distribution()[testNodeID]; return !ok })
}

// TestDistributionUnderChurn checks that Distribution follows a proxy
// that answers each push only after the next one is made: what it has
// taken is recorded when it answers, so it never waits for a moment with
// nothing in flight (under churn faster than the proxy answers, or than
// Distribution is read, there is none).
func TestDistributionUnderChurn(t *testing.T) {
	ts := startServer(t)
	c := dialADS(t, ts.xdsAddr)
	dist := func() uint64 { return ts.srv.Distribution()[testNodeID] }
	// pushed waits until the server has pushed the config store's current
	// version and returns it.
	pushed := func(what string) uint64 {
		t.Helper()
		var v uint64
		pollUntil(t, what+" pushed", func() bool {
			v = ts.srv.Store().Current().Version
			ts.srv.pusher.mu.Lock()
			defer ts.srv.pusher.mu.Unlock()
			return ts.srv.pusher.configVersion == v
		})
		return v
	}

	c.send(t, &discovery.DiscoveryRequest{Node: &core.Node{Id: testNodeID}, TypeUrl: resourcev3.ClusterType})
	prev := c.recv(t)
	prevVersion := pushed("first config")
	for _, svc := range []string{"b", "c", "d", "e"} {
		// A new push while the last response is unanswered ...
		writeFile(t, filepath.Join(ts.dir, svc+".yaml"), fmt.Sprintf(seYAML, svc))
		pollUntil(t, "config with "+svc, func() bool {
			return len(ts.srv.Store().Current().Objects) > 0 && ts.srv.Store().Current().Version > prevVersion
		})
		v := pushed(svc)
		// ... then the answer: the proxy has the previous push's version,
		// though the new push is now in flight to it.
		c.send(t, &discovery.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, VersionInfo: prev.VersionInfo, ResponseNonce: prev.Nonce})
		next := c.recv(t)
		if next.VersionInfo == prev.VersionInfo {
			t.Fatalf("push for %s sent version %s again", svc, next.VersionInfo)
		}
		pollUntil(t, fmt.Sprintf("after %s: Distribution = %d (want the answered push's version %d)", svc, dist(), prevVersion),
			func() bool { return dist() == prevVersion })
		prev, prevVersion = next, v
	}
	c.send(t, &discovery.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, VersionInfo: prev.VersionInfo, ResponseNonce: prev.Nonce})
	pollUntil(t, fmt.Sprintf("last push answered: Distribution = %d (want %d)", dist(), prevVersion), func() bool { return dist() == prevVersion })
}

package proxy

import (
	"net/netip"
	"testing"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// TestChainChosenPerSnapshot: a connection's filter chain is chosen at its
// first request on a snapshot and reused after; a new snapshot chooses
// again, from its own listeners.
func TestChainChosenPerSnapshot(t *testing.T) {
	addr := netip.MustParseAddrPort("127.0.0.1:8080")
	listener := func() *xdsconfig.Listener {
		return &xdsconfig.Listener{Name: "l", Address: addr, FilterChains: []xdsconfig.FilterChain{
			{DestinationPort: 9090}, {DestinationPort: 8080}}}
	}
	snap := func(v int64, l *xdsconfig.Listener) *snapshot {
		return &snapshot{version: v, byAddr: map[netip.AddrPort]*xdsconfig.Listener{addr: l}}
	}
	info := &connInfo{target: addr, dst: addr}
	l1 := listener()
	s1 := snap(1, l1)
	l, fc := info.chainIn(s1)
	if l != l1 || fc != &l1.FilterChains[1] {
		t.Fatalf("chose %p %p, want the 8080 chain of the listener", l, fc)
	}
	first := info.chosen.Load()
	if _, fc = info.chainIn(s1); fc != &l1.FilterChains[1] || info.chosen.Load() != first {
		t.Fatal("second request on the same snapshot chose again")
	}
	l2 := listener()
	if l, fc = info.chainIn(snap(2, l2)); l != l2 || fc != &l2.FilterChains[1] {
		t.Fatal("a new snapshot kept the old chain")
	}
}

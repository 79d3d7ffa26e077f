package proxy

import (
	"fmt"
	"math"
	"testing"
)

func hostsWeighted(weights ...uint32) []*host {
	hs := make([]*host, len(weights))
	for i, w := range weights {
		hs[i] = &host{addr: fmt.Sprintf("10.0.0.%d:9080", i+1), weight: w}
	}
	return hs
}

// shares counts how many of the items each host got.
func shares[T any](items []T, hostOf func(T) *host) map[*host]float64 {
	out := map[*host]float64{}
	for _, it := range items {
		out[hostOf(it)]++
	}
	for h := range out {
		out[h] /= float64(len(items))
	}
	return out
}

func TestMaglevTableFollowsWeights(t *testing.T) {
	hs := hostsWeighted(1, 2, 1, 4)
	table := buildMaglev(hs, 65537)
	got := shares(table, func(h *host) *host { return h })
	for _, h := range hs {
		if want := float64(h.weight) / 8; math.Abs(got[h]-want) > 0.01 {
			t.Errorf("host %s weight %d has %.3f of the table, want %.3f", h.addr, h.weight, got[h], want)
		}
	}
}

// TestMaglevMinimalDisruption: removing one of ten hosts moves the keys it
// had and few others (Maglev's bound is small, not zero).
func TestMaglevMinimalDisruption(t *testing.T) {
	hs := hostsWeighted(1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
	before := buildMaglev(hs, 65537)
	after := buildMaglev(append(append([]*host{}, hs[:3]...), hs[4:]...), 65537)
	moved, kept := 0, 0
	for i := range before {
		if before[i] == hs[3] {
			continue
		}
		kept++
		if after[i] != before[i] {
			moved++
		}
	}
	if frac := float64(moved) / float64(kept); frac > 0.05 {
		t.Errorf("removing one of ten hosts moved %.1f%% of the other hosts' entries, want under 5%%", 100*frac)
	}
}

func TestRingSizeAndWeights(t *testing.T) {
	hs := hostsWeighted(1, 1, 2)
	ring := buildRing(hs, 1024, 8<<20)
	// The smallest share (1/4) gets at least 1024/4 points: 1024 in all.
	if len(ring) != 1024 {
		t.Errorf("ring of weights 1,1,2 with minimum_ring_size 1024 has %d points, want 1024", len(ring))
	}
	got := shares(ring, func(e ringEntry) *host { return e.h })
	if got[hs[2]] != 0.5 || got[hs[0]] != 0.25 {
		t.Errorf("point shares %.3f %.3f %.3f, want 0.25 0.25 0.5", got[hs[0]], got[hs[1]], got[hs[2]])
	}
	if small := buildRing(hs, 8, 8); len(small) != 8 {
		t.Errorf("ring capped at maximum_ring_size 8 has %d points", len(small))
	}
}

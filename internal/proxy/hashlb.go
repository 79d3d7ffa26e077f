package proxy

import (
	"math"
	"sort"
	"strconv"
)

// The consistent-hash load balancers: Envoy's ring hash (a sorted ring of
// points, each host getting points in proportion to its weight) and Maglev
// (a lookup table filled from per-host permutations, Eisenbud et al. 2016,
// as Envoy builds it with weights). Keys and points are hashed with hash64.

type ringEntry struct {
	hash uint64
	h    *host
}

// buildRing places the hosts' points: the smallest weight share gets at
// least its part of minSize points and the ring never exceeds maxSize.
func buildRing(hosts []*host, minSize, maxSize uint64) []ringEntry {
	if len(hosts) == 0 {
		return nil
	}
	if minSize == 0 {
		minSize, maxSize = 1024, 8<<20
	}
	var total float64
	for _, h := range hosts {
		total += float64(h.weight)
	}
	minShare := math.Inf(1)
	for _, h := range hosts {
		minShare = min(minShare, float64(h.weight)/total)
	}
	scale := min(math.Ceil(minShare*float64(minSize))/minShare, float64(maxSize))
	ring := make([]ringEntry, 0, int(scale)+len(hosts))
	var current, target float64
	for _, h := range hosts {
		target += scale * float64(h.weight) / total
		for i := 0; current < target; i++ {
			ring = append(ring, ringEntry{hash: hash64(h.addr + "_" + strconv.Itoa(i)), h: h})
			current++
		}
	}
	sort.Slice(ring, func(i, j int) bool { return ring[i].hash < ring[j].hash })
	return ring
}

// buildMaglev fills a table of size m (a prime): each host walks its own
// permutation of the table (offset, then steps of skip) and takes the first
// free entry each time its turn comes; a host of weight w gets a turn in w
// of every maxWeight rounds, so entries follow the weights.
func buildMaglev(hosts []*host, m uint64) []*host {
	if len(hosts) == 0 {
		return nil
	}
	if m == 0 {
		m = 65537
	}
	type entry struct {
		h                  *host
		offset, skip, next uint64
		target             float64
	}
	entries := make([]entry, len(hosts))
	var maxWeight float64
	for i, h := range hosts {
		entries[i] = entry{h: h, offset: hash64(h.addr) % m, skip: hash64(h.addr+"_skip")%(m-1) + 1}
		maxWeight = max(maxWeight, float64(h.weight))
	}
	table := make([]*host, m)
	filled := uint64(0)
	for round := 0.0; filled < m; round++ {
		for i := range entries {
			e := &entries[i]
			if round*float64(e.h.weight) < e.target {
				continue
			}
			e.target += maxWeight
			c := (e.offset + e.skip*e.next) % m
			for table[c] != nil {
				e.next++
				c = (e.offset + e.skip*e.next) % m
			}
			table[c] = e.h
			e.next++
			filled++
			if filled == m {
				break
			}
		}
	}
	return table
}

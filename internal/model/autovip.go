package model

import (
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"

	"github.com/bowline-mesh/bowline/internal/registry"
)

// AutoVIPRange is where services without addresses get a virtual IP, as
// Istio's DNS auto-allocation does (Class E, never routed).
var AutoVIPRange = netip.MustParsePrefix("240.240.0.0/16")

// AutoVIPs allocates a virtual IP in AutoVIPRange to every service host that
// has no addresses and is not a wildcard, like Istio's DNS auto-allocation.
// It is a pure function of the set of host names: hosts are taken in sorted
// order, each hashed to a slot (avoiding .0 and .255) with linear probing on
// collision, so adding a service rarely moves another one. `bowline up
// --netns` writes the same addresses into each namespace's hosts file, and
// the generators put them in listener names and virtual host domains.
func AutoVIPs(services []*registry.Service) map[string]netip.Addr {
	var hosts []string
	for _, s := range services {
		if len(s.Addresses) > 0 || strings.HasPrefix(s.Hostname, "*") || s.Resolution == registry.ResolutionNone {
			continue
		}
		if !slices.Contains(hosts, s.Hostname) {
			hosts = append(hosts, s.Hostname)
		}
	}
	slices.Sort(hosts)
	out := make(map[string]netip.Addr, len(hosts))
	used := map[uint16]bool{}
	base := AutoVIPRange.Addr().As4()
	for _, h := range hosts {
		if len(used) >= 256*254 {
			break // range exhausted: the rest keep no VIP
		}
		f := fnv.New32a()
		f.Write([]byte(h))
		slot := uint16(f.Sum32())
		for !usable(slot) || used[slot] {
			slot++
		}
		used[slot] = true
		out[h] = netip.AddrFrom4([4]byte{base[0], base[1], byte(slot >> 8), byte(slot)})
	}
	return out
}

func usable(slot uint16) bool {
	low := byte(slot)
	return low != 0 && low != 255
}

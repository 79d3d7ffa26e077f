package model

import (
	"testing"

	"github.com/bowline-mesh/bowline/internal/registry"
)

func TestAutoVIPs(t *testing.T) {
	svc := func(host string, addrs ...string) *registry.Service {
		return &registry.Service{Hostname: host, Addresses: addrs}
	}
	base := []*registry.Service{
		svc("reviews.default.svc.cluster.local"), svc("ratings.default.svc.cluster.local"),
		svc("db.example.com", "10.1.2.3"), svc("*.wild.example.com"),
		{Hostname: "none.example.com", Resolution: registry.ResolutionNone},
	}
	got := AutoVIPs(base)
	if len(got) != 2 {
		t.Fatalf("AutoVIPs = %v, want reviews and ratings only", got)
	}
	for h, a := range got {
		if !AutoVIPRange.Contains(a) || a.As4()[3] == 0 || a.As4()[3] == 255 {
			t.Errorf("%s: %s outside 240.240.0.0/16 or a .0/.255 address", h, a)
		}
	}
	if got["reviews.default.svc.cluster.local"] == got["ratings.default.svc.cluster.local"] {
		t.Error("two hosts share a VIP")
	}
	// Adding a service keeps the others' addresses, and order does not matter.
	more := append([]*registry.Service{svc("details.default.svc.cluster.local")}, base...)
	again := AutoVIPs(more)
	for h, a := range got {
		if again[h] != a {
			t.Errorf("%s moved from %s to %s when a service was added", h, a, again[h])
		}
	}
	// Collisions probe to distinct addresses.
	var many []*registry.Service
	for i := range 2000 {
		many = append(many, svc(string(rune('a'+i%26))+string(rune('a'+i/26%26))+string(rune('a'+i/676))+".svc"))
	}
	seen := map[string]bool{}
	for _, a := range AutoVIPs(many) {
		if seen[a.String()] {
			t.Fatalf("duplicate VIP %s", a)
		}
		seen[a.String()] = true
	}
}

package local

import "testing"

// TestPortAllocatorNeverRepeats: ports handed out are not yet bound, so the
// allocator itself must never give one twice, and all are below the
// ephemeral range.
func TestPortAllocatorNeverRepeats(t *testing.T) {
	var a portAllocator
	seen := map[uint32]bool{}
	hi := uint32(ephemeralLow())
	for range 50 {
		ports, err := a.take("127.0.0.1", 8)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ports {
			if seen[p] {
				t.Fatalf("port %d handed out twice", p)
			}
			if p < portRangeLow || p >= hi {
				t.Fatalf("port %d outside [%d, %d)", p, portRangeLow, hi)
			}
			seen[p] = true
		}
	}
}

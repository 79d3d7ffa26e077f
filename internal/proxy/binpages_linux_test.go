package proxy

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestReleaseBinaryPages drops the test binary's read-only pages and checks
// that RssFile went down and the code still runs (pages fault back in).
func TestReleaseBinaryPages(t *testing.T) {
	before := rssFileKiB(t)
	n, err := ReleaseBinaryPages()
	if err != nil {
		t.Fatal(err)
	}
	if n <= 0 {
		t.Fatalf("released %d bytes, want the text and rodata mappings", n)
	}
	after := rssFileKiB(t)
	if after >= before {
		t.Errorf("RssFile %d KiB after release, want below %d KiB", after, before)
	}
	if got := newRequestID(); len(got) != 36 {
		t.Errorf("code after release: request id %q", got)
	}
}

func rssFileKiB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "RssFile:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	t.Skip("no RssFile in /proc/self/status")
	return 0
}

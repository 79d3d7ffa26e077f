package proxy

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ReleaseBinaryPages drops this process's mappings of the read-only pages of
// its own executable (text and rodata) and marks them MADV_RANDOM.
//
// Why: bowline is one binary holding control plane, CLI and proxy. Package
// initialisation of everything linked (protobuf registrations of Envoy,
// Istio and Kubernetes types, gRPC, Prometheus) touches pages all over text
// and rodata, and the kernel's fault-around maps up to 16 neighbouring
// page-cache pages on every fault, so an idle sidecar shows ~21 MiB of
// file-backed RSS that its data path never uses again. The pages stay in
// the page cache (shared by every sidecar on the node); only this process's
// page-table entries go. What the proxy does use faults back in, one page
// at a time (MADV_RANDOM disables fault-around), so RSS then reflects the
// proxy's working set. Writable mappings are never touched.
//
// It returns the bytes of mappings released. Call it once initialisation is
// over; it is process-wide, so the command calls it, never a library.
func ReleaseBinaryPages() (int64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	type span struct{ start, end uintptr }
	var spans []span
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 00400000-00c1c000 r-xp 00000000 08:01 123 /path/to/bowline
		fs := strings.Fields(sc.Text())
		if len(fs) < 6 || fs[5] != exe || strings.Contains(fs[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(fs[0], "-")
		if !ok {
			continue
		}
		s, err1 := strconv.ParseUint(lo, 16, 64)
		e, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		spans = append(spans, span{uintptr(s), uintptr(e)})
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	var n int64
	for _, sp := range spans {
		for _, advice := range []int{syscall.MADV_RANDOM, syscall.MADV_DONTNEED} {
			if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, sp.start, sp.end-sp.start, uintptr(advice)); e != 0 {
				return n, fmt.Errorf("madvise %x-%x: %w", sp.start, sp.end, e)
			}
		}
		n += int64(sp.end - sp.start)
	}
	return n, nil
}

package local

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Ports for replicas come from below the kernel's ephemeral range: a port
// from the ephemeral range (what listening on port 0 returns) can be taken
// as the local port of any outgoing connection between the moment it is
// found free and the moment the sidecar binds it.
const (
	portRangeLow       = 20000
	defaultEphemeralLo = 32768
)

// ephemeralLow returns the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return defaultEphemeralLo
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 {
		return defaultEphemeralLo
	}
	lo, err := strconv.Atoi(fields[0])
	if err != nil || lo <= portRangeLow+1000 {
		return defaultEphemeralLo
	}
	return lo
}

// portAllocator hands out ports below the ephemeral range, never the same
// port twice in one run: a port handed to one replica is free until its
// process binds it, so probing alone could give it to the next replica too.
type portAllocator struct {
	mu     sync.Mutex
	issued map[uint32]bool
}

// take reserves n distinct free TCP ports on host below the ephemeral range,
// starting at a random point so that concurrent runs rarely probe the same
// ports, and releases them for the caller's processes to bind. The
// supervisor restarts a process whose port was taken in between.
func (a *portAllocator) take(host string, n int) ([]uint32, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.issued == nil {
		a.issued = map[uint32]bool{}
	}
	hi := ephemeralLow()
	span := hi - portRangeLow
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]uint32, 0, n)
	start := rand.IntN(span)
	for i := 0; i < span && len(ports) < n; i++ {
		p := uint32(portRangeLow + (start+i)%span)
		if a.issued[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(int(p))))
		if err != nil {
			continue
		}
		ls = append(ls, l)
		ports = append(ports, p)
	}
	if len(ports) < n {
		return nil, fmt.Errorf("find %d free ports on %s between %d and %d: only %d free", n, host, portRangeLow, hi, len(ports))
	}
	for _, p := range ports {
		a.issued[p] = true
	}
	return ports, nil
}

// PortError says a port `bowline up` needs cannot be bound, and which flag
// chooses another.
type PortError struct {
	// What names the port's use: "ingress", "xds", "debug".
	What string
	// Addr is the HOST:PORT that could not be bound.
	Addr string
	// Hint says how to choose another ("choose another with --ingress-port").
	Hint string
	Err  error
}

func (e *PortError) Error() string {
	_, port, _ := net.SplitHostPort(e.Addr)
	if errors.Is(e.Err, syscall.EADDRINUSE) {
		return fmt.Sprintf("%s port %s is in use: %s", e.What, port, e.Hint)
	}
	return fmt.Sprintf("%s port %s cannot be bound on %s (%v): %s", e.What, port, e.Addr, errText(e.Err), e.Hint)
}

func (e *PortError) Unwrap() error { return e.Err }

// errText is the innermost message of a socket error ("permission denied").
func errText(err error) string {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	return err.Error()
}

// CheckPort binds addr once and lets it go: a *PortError when it cannot
// be bound (in use, or a privileged port without the right). Port 0
// always passes.
func CheckPort(what, addr, hint string) error {
	if _, port, err := net.SplitHostPort(addr); err == nil && port == "0" {
		return nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return &PortError{What: what, Addr: addr, Hint: hint, Err: err}
	}
	return l.Close()
}

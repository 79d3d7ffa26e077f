package local

import (
	"fmt"
	"net"
)

// freePorts reserves n distinct free TCP ports on host by listening on port 0
// and releasing them. Another process could take one in between; the
// supervisor restarts what fails to bind.
func freePorts(host string, n int) ([]uint32, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]uint32, 0, n)
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("find a free port on %s: %w", host, err)
		}
		ls = append(ls, l)
		ports = append(ports, uint32(l.Addr().(*net.TCPAddr).Port))
	}
	return ports, nil
}

//go:build linux

package proxy

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// originalDst returns the destination a REDIRECTed connection was going to
// (getsockopt SO_ORIGINAL_DST, IPv4 and IPv6).
func originalDst(c net.Conn) (netip.AddrPort, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return netip.AddrPort{}, errors.New("original dst: not a tcp connection")
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var (
		out  netip.AddrPort
		serr error
	)
	err = raw.Control(func(fd uintptr) {
		if addrPortOf(c.LocalAddr()).Addr().Is4() {
			// sockaddr_in is returned in an IPv6Mreq-sized buffer.
			m, e := unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST)
			if e != nil {
				serr = e
				return
			}
			port := binary.BigEndian.Uint16(m.Multiaddr[2:4])
			out = netip.AddrPortFrom(netip.AddrFrom4([4]byte(m.Multiaddr[4:8])), port)
			return
		}
		a, e := unix.GetsockoptIPv6MTUInfo(int(fd), unix.SOL_IPV6, unix.SO_ORIGINAL_DST)
		if e != nil {
			serr = e
			return
		}
		port := uint16(a.Addr.Port>>8 | a.Addr.Port<<8)
		out = netip.AddrPortFrom(netip.AddrFrom16(a.Addr.Addr).Unmap(), port)
	})
	if err != nil {
		return netip.AddrPort{}, err
	}
	if serr != nil {
		return netip.AddrPort{}, serr
	}
	return out, nil
}

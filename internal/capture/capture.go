// Package capture builds and applies the iptables rules that send a pod's TCP
// traffic through its sidecar, with the semantics of Istio's istio-iptables
// in REDIRECT mode (the same chain names: ISTIO_INBOUND, ISTIO_IN_REDIRECT,
// ISTIO_OUTPUT, ISTIO_REDIRECT), so that people who know Istio recognise them.
//
// The builder (Rules) is a pure function from Config to iptables-restore
// input; the applier (Apply, Cleanup) runs iptables-restore / iptables inside
// a network namespace. `bowline up --netns` and the Kubernetes init container
// (`bowline iptables`, flags as istio-iptables', see IstioArgs) both use them.
//
// The sidecar's own traffic is recognised by its owner: the proxy runs as
// ProxyUID/ProxyGID (1337, Istio's istio-proxy user), and the OUTPUT rules
// let sockets owned by that uid or gid through uncaptured.
//
// It must not import anything from Bowline: it is a leaf package.
package capture

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Istio's chain names and defaults.
const (
	ChainInbound    = "ISTIO_INBOUND"
	ChainInRedirect = "ISTIO_IN_REDIRECT"
	ChainOutput     = "ISTIO_OUTPUT"
	ChainRedirect   = "ISTIO_REDIRECT"

	// DefaultProxyUID and DefaultProxyGID are Istio's istio-proxy user and group.
	DefaultProxyUID = 1337
	DefaultProxyGID = 1337
	// DefaultOutboundPort is the sidecar's virtualOutbound listener.
	DefaultOutboundPort = 15001
	// DefaultInboundPort is the sidecar's virtualInbound listener.
	DefaultInboundPort = 15006
	// TunnelPort is Istio's HBONE port; it is never captured (as in Istio).
	TunnelPort = 15008
	// InboundPassthroughSource is the source address the sidecar uses for
	// inbound passthrough connections to the pod IP (Istio's 127.0.0.6); such
	// connections are never captured again.
	InboundPassthroughSource = "127.0.0.6/32"
)

// DefaultExcludeInboundPorts are the sidecar ports Istio never captures on the
// way in: 15090 (Prometheus), 15021 (health), 15020 (merged metrics).
var DefaultExcludeInboundPorts = []uint16{15090, 15021, 15020}

// Config says what to capture. The zero value is not valid: use Default and
// adjust.
type Config struct {
	// ProxyUID and ProxyGID own the sidecar's sockets; its traffic is not captured.
	ProxyUID, ProxyGID uint32
	// OutboundPort is where captured outbound TCP goes (15001).
	OutboundPort uint16
	// InboundPort is where captured inbound TCP goes (15006).
	InboundPort uint16
	// InboundPorts lists the destination ports captured on the way in. Empty
	// captures none; ["*"]-like capture of every port is InboundAllPorts.
	InboundPorts []uint16
	// InboundAllPorts captures every inbound TCP port except ExcludeInboundPorts
	// (Istio's includeInboundPorts "*").
	InboundAllPorts bool
	// ExcludeInboundPorts are never captured on the way in (with InboundAllPorts).
	ExcludeInboundPorts []uint16
	// IncludeOutboundCIDRs are the destinations captured on the way out; empty
	// means every destination (Istio's includeOutboundIPRanges "*") unless
	// NoOutboundCIDRs is set.
	IncludeOutboundCIDRs []netip.Prefix
	// NoOutboundCIDRs captures no destination by address (Istio's
	// includeOutboundIPRanges ""): only IncludeOutboundPorts go to the
	// sidecar on the way out.
	NoOutboundCIDRs bool
	// ExcludeOutboundCIDRs are never captured on the way out.
	ExcludeOutboundCIDRs []netip.Prefix
	// ExcludeOutboundPorts are destination ports never captured on the way out.
	ExcludeOutboundPorts []uint16
	// IncludeOutboundPorts are destination ports always captured on the way
	// out, even to CIDRs outside IncludeOutboundCIDRs.
	IncludeOutboundPorts []uint16
}

// Default returns Istio's defaults: uid/gid 1337, 15001/15006, every inbound
// port but Istio's own, every outbound destination.
func Default() Config {
	return Config{
		ProxyUID: DefaultProxyUID, ProxyGID: DefaultProxyGID,
		OutboundPort: DefaultOutboundPort, InboundPort: DefaultInboundPort,
		InboundAllPorts:     true,
		ExcludeInboundPorts: slices.Clone(DefaultExcludeInboundPorts),
	}
}

// Validate checks c.
func (c Config) Validate() error {
	if c.OutboundPort == 0 || c.InboundPort == 0 {
		return fmt.Errorf("capture: outbound and inbound ports must be set")
	}
	if c.OutboundPort == c.InboundPort {
		return fmt.Errorf("capture: outbound and inbound port are both %d", c.OutboundPort)
	}
	if c.NoOutboundCIDRs && len(c.IncludeOutboundCIDRs) > 0 {
		return fmt.Errorf("capture: no outbound CIDRs, yet %d to include", len(c.IncludeOutboundCIDRs))
	}
	for _, p := range append(slices.Clone(c.IncludeOutboundCIDRs), c.ExcludeOutboundCIDRs...) {
		if !p.IsValid() || !p.Addr().Is4() {
			return fmt.Errorf("capture: CIDR %s: only IPv4 ranges are supported", p)
		}
	}
	return nil
}

// Rules returns the nat table for c as iptables-restore input, one line per
// element, ending in COMMIT. It is a pure function: rules come in Istio's
// order so that `iptables -t nat -S` reads like a Kubernetes pod's.
//
// Inbound (PREROUTING -> ISTIO_INBOUND): the tunnel port and excluded ports
// return; captured ports jump to ISTIO_IN_REDIRECT (REDIRECT to InboundPort).
//
// Outbound (OUTPUT -> ISTIO_OUTPUT), first match wins:
//  1. from 127.0.0.6 over lo: the sidecar's inbound passthrough, not captured;
//  2. the sidecar to a local, non-127.0.0.1 address over lo (the pod calling
//     itself through its service): back in through ISTIO_IN_REDIRECT, so
//     inbound policy applies;
//  3. anything else over lo not owned by the sidecar (the app to 127.0.0.1 or
//     to its own pod IP): not captured;
//  4. anything else owned by the sidecar: not captured (its upstream traffic);
//  5. to 127.0.0.1: not captured;
//  6. excluded ports and CIDRs: not captured; included ports captured;
//  7. the rest (or the included CIDRs): ISTIO_REDIRECT (REDIRECT to OutboundPort).
func Rules(c Config) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	add("*nat")
	add(":%s - [0:0]", ChainInbound)
	add(":%s - [0:0]", ChainRedirect)
	add(":%s - [0:0]", ChainInRedirect)
	add(":%s - [0:0]", ChainOutput)
	add("-A %s -p tcp --dport %d -j RETURN", ChainInbound, TunnelPort)
	add("-A %s -p tcp -j REDIRECT --to-ports %d", ChainRedirect, c.OutboundPort)
	add("-A %s -p tcp -j REDIRECT --to-ports %d", ChainInRedirect, c.InboundPort)

	// Inbound.
	inbound := c.InboundAllPorts || len(c.InboundPorts) > 0
	if inbound {
		add("-A PREROUTING -p tcp -j %s", ChainInbound)
		if c.InboundAllPorts {
			// The sidecar's own listeners are never targets.
			for _, p := range dedupPorts(append([]uint16{c.OutboundPort, c.InboundPort}, c.ExcludeInboundPorts...)) {
				add("-A %s -p tcp --dport %d -j RETURN", ChainInbound, p)
			}
			add("-A %s -p tcp -j %s", ChainInbound, ChainInRedirect)
		} else {
			for _, p := range dedupPorts(c.InboundPorts) {
				add("-A %s -p tcp --dport %d -j %s", ChainInbound, p, ChainInRedirect)
			}
		}
	}

	// Outbound.
	add("-A OUTPUT -p tcp -j %s", ChainOutput)
	add("-A %s -s %s -o lo -j RETURN", ChainOutput, InboundPassthroughSource)
	owners := []struct {
		flag string
		id   uint32
	}{{"--uid-owner", c.ProxyUID}, {"--gid-owner", c.ProxyGID}}
	for _, o := range owners {
		if inbound {
			if c.InboundAllPorts {
				add("-A %s ! -d 127.0.0.1/32 -o lo -p tcp -m tcp ! --dport %d -m owner %s %d -j %s",
					ChainOutput, TunnelPort, o.flag, o.id, ChainInRedirect)
			} else {
				// Only ports the inbound side captures come back in; others
				// reach the app directly (nothing would handle them on 15006).
				for _, p := range dedupPorts(c.InboundPorts) {
					add("-A %s ! -d 127.0.0.1/32 -o lo -p tcp -m tcp --dport %d -m owner %s %d -j %s",
						ChainOutput, p, o.flag, o.id, ChainInRedirect)
				}
			}
		}
		add("-A %s -o lo -m owner ! %s %d -j RETURN", ChainOutput, o.flag, o.id)
		add("-A %s -m owner %s %d -j RETURN", ChainOutput, o.flag, o.id)
	}
	add("-A %s -d 127.0.0.1/32 -j RETURN", ChainOutput)
	for _, p := range dedupPorts(c.ExcludeOutboundPorts) {
		add("-A %s -p tcp --dport %d -j RETURN", ChainOutput, p)
	}
	for _, p := range dedupPorts(c.IncludeOutboundPorts) {
		add("-A %s -p tcp --dport %d -j %s", ChainOutput, p, ChainRedirect)
	}
	for _, p := range dedupPrefixes(c.ExcludeOutboundCIDRs) {
		add("-A %s -d %s -j RETURN", ChainOutput, p)
	}
	switch {
	case c.NoOutboundCIDRs:
		// Nothing else is captured: the chain's end returns.
	case len(c.IncludeOutboundCIDRs) == 0:
		add("-A %s -j %s", ChainOutput, ChainRedirect)
	default:
		for _, p := range dedupPrefixes(c.IncludeOutboundCIDRs) {
			add("-A %s -d %s -j %s", ChainOutput, p, ChainRedirect)
		}
		add("-A %s -j RETURN", ChainOutput)
	}
	add("COMMIT")
	return out
}

// Script returns Rules(c) as one iptables-restore input.
func Script(c Config) string { return strings.Join(Rules(c), "\n") + "\n" }

// CleanupRules are the iptables commands (arguments after "iptables") that
// remove what Rules installed, in order. Each may fail when the rule or chain
// is already gone; callers ignore those failures.
func CleanupRules() [][]string {
	var out [][]string
	out = append(out,
		[]string{"-t", "nat", "-D", "PREROUTING", "-p", "tcp", "-j", ChainInbound},
		[]string{"-t", "nat", "-D", "OUTPUT", "-p", "tcp", "-j", ChainOutput})
	for _, ch := range []string{ChainInbound, ChainOutput, ChainRedirect, ChainInRedirect} {
		out = append(out, []string{"-t", "nat", "-F", ch})
	}
	for _, ch := range []string{ChainInbound, ChainOutput, ChainRedirect, ChainInRedirect} {
		out = append(out, []string{"-t", "nat", "-X", ch})
	}
	return out
}

func dedupPorts(ps []uint16) []uint16 {
	var out []uint16
	for _, p := range ps {
		if p != 0 && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

func dedupPrefixes(ps []netip.Prefix) []string {
	var out []string
	for _, p := range ps {
		s := p.Masked().String()
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// ParsePorts parses a comma-separated port list ("9080,9443"); "*" sets all.
func ParsePorts(s string) (ports []uint16, all bool, err error) {
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		switch f {
		case "":
			continue
		case "*":
			all = true
			continue
		}
		n, err := strconv.ParseUint(f, 10, 16)
		if err != nil || n == 0 {
			return nil, false, fmt.Errorf("port %q: want a number from 1 to 65535", f)
		}
		ports = append(ports, uint16(n))
	}
	return ports, all, nil
}

// ParseCIDRs parses a comma-separated CIDR list ("10.0.0.0/8,192.168.0.0/16").
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("CIDR %q: %w", f, err)
		}
		out = append(out, p)
	}
	return out, nil
}

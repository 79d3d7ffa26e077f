package capture

import (
	"fmt"
	"strings"
)

// IstioArgs are istio-iptables' settings in the string forms Istio's
// injector writes into the init container (and Istio's traffic.sidecar.istio.io
// annotations carry): comma-separated lists, "*" for all.
type IstioArgs struct {
	// OutboundPort (-p, 15001) and InboundPort (-z, 15006).
	OutboundPort, InboundPort uint16
	// ProxyUID (-u) and ProxyGID (-g) own the sidecar's sockets.
	ProxyUID, ProxyGID uint32
	// InterceptionMode (-m): only REDIRECT is supported.
	InterceptionMode string
	// IncludeOutboundIPRanges (-i): "*" captures every destination, ""
	// none (then only IncludeOutboundPorts).
	IncludeOutboundIPRanges string
	// ExcludeOutboundIPRanges (-x) are never captured.
	ExcludeOutboundIPRanges string
	// IncludeInboundPorts (-b): "*" captures every inbound port but
	// ExcludeInboundPorts, "" none.
	IncludeInboundPorts string
	// ExcludeInboundPorts (-d) are never captured on the way in.
	ExcludeInboundPorts string
	// IncludeOutboundPorts (-q) are always captured on the way out.
	IncludeOutboundPorts string
	// ExcludeOutboundPorts (-o) are never captured on the way out.
	ExcludeOutboundPorts string
}

// Config checks a and returns the capture config; errors name the setting
// (by its istio-iptables flag) and the value.
func (a IstioArgs) Config() (Config, error) {
	if a.InterceptionMode != "REDIRECT" {
		return Config{}, fmt.Errorf("-m %q: only REDIRECT interception is supported", a.InterceptionMode)
	}
	c := Config{ProxyUID: a.ProxyUID, ProxyGID: a.ProxyGID, OutboundPort: a.OutboundPort, InboundPort: a.InboundPort}
	var err error
	ports := func(flag, s string, star bool) ([]uint16, bool, error) {
		ps, all, err := ParsePorts(s)
		if err != nil {
			return nil, false, fmt.Errorf("%s %q: %w", flag, s, err)
		}
		if all && !star {
			return nil, false, fmt.Errorf("%s %q: \"*\" is not allowed here", flag, s)
		}
		if all && len(ps) > 0 {
			return nil, false, fmt.Errorf("%s %q: \"*\" cannot be combined with ports", flag, s)
		}
		return ps, all, nil
	}
	if c.InboundPorts, c.InboundAllPorts, err = ports("-b", a.IncludeInboundPorts, true); err != nil {
		return Config{}, err
	}
	if c.ExcludeInboundPorts, _, err = ports("-d", a.ExcludeInboundPorts, false); err != nil {
		return Config{}, err
	}
	if c.IncludeOutboundPorts, _, err = ports("-q", a.IncludeOutboundPorts, false); err != nil {
		return Config{}, err
	}
	if c.ExcludeOutboundPorts, _, err = ports("-o", a.ExcludeOutboundPorts, false); err != nil {
		return Config{}, err
	}
	switch inc := strings.TrimSpace(a.IncludeOutboundIPRanges); inc {
	case "*":
	case "":
		c.NoOutboundCIDRs = true
	default:
		if c.IncludeOutboundCIDRs, err = ParseCIDRs(inc); err != nil {
			return Config{}, fmt.Errorf("-i %q: %w", a.IncludeOutboundIPRanges, err)
		}
	}
	if c.ExcludeOutboundCIDRs, err = ParseCIDRs(a.ExcludeOutboundIPRanges); err != nil {
		return Config{}, fmt.Errorf("-x %q: %w", a.ExcludeOutboundIPRanges, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

package capture

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// injectorDefaults are the flags the sidecar injector writes for a pod
// without traffic annotations.
func injectorDefaults() IstioArgs {
	return IstioArgs{OutboundPort: 15001, InboundPort: 15006, ProxyUID: 1337, ProxyGID: 1337, InterceptionMode: "REDIRECT",
		IncludeOutboundIPRanges: "*", IncludeInboundPorts: "*", ExcludeInboundPorts: "15090,15021,15020"}
}

// The injector's default flags install exactly Istio's default rules, the
// ones `bowline up --netns` builds from Default().
func TestIstioArgsDefault(t *testing.T) {
	c, err := injectorDefaults().Config()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := Script(c), Script(Default()); got != want {
		t.Errorf("rules differ:\n%s\nwant\n%s", got, want)
	}
}

func TestIstioArgs(t *testing.T) {
	a := injectorDefaults()
	a.IncludeOutboundIPRanges = "10.96.0.0/12, 10.244.0.0/16"
	a.ExcludeOutboundIPRanges = "10.96.0.1/32"
	a.IncludeInboundPorts = "8080,8443"
	a.ExcludeOutboundPorts = "5432"
	a.IncludeOutboundPorts = "443"
	c, err := a.Config()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{ProxyUID: 1337, ProxyGID: 1337, OutboundPort: 15001, InboundPort: 15006,
		InboundPorts: []uint16{8080, 8443}, ExcludeInboundPorts: []uint16{15090, 15021, 15020},
		IncludeOutboundCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12"), netip.MustParsePrefix("10.244.0.0/16")},
		ExcludeOutboundCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.1/32")},
		ExcludeOutboundPorts: []uint16{5432}, IncludeOutboundPorts: []uint16{443}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Config() = %+v\nwant %+v", c, want)
	}

	// includeOutboundIPRanges "": only the included ports go out through
	// the sidecar.
	a = injectorDefaults()
	a.IncludeOutboundIPRanges = ""
	a.IncludeOutboundPorts = "443"
	c, err = a.Config()
	if err != nil {
		t.Fatal(err)
	}
	rules := Script(c)
	if strings.Contains(rules, "-A ISTIO_OUTPUT -j ISTIO_REDIRECT") || !strings.Contains(rules, "-A ISTIO_OUTPUT -p tcp --dport 443 -j ISTIO_REDIRECT") {
		t.Errorf("-i \"\" -q 443 rules:\n%s", rules)
	}
}

func TestIstioArgsErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(*IstioArgs)
		want string
	}{
		{"tproxy", func(a *IstioArgs) { a.InterceptionMode = "TPROXY" }, `-m "TPROXY": only REDIRECT interception is supported`},
		{"bad port", func(a *IstioArgs) { a.IncludeInboundPorts = "80,http" }, `-b "80,http": port "http": want a number from 1 to 65535`},
		{"star exclude", func(a *IstioArgs) { a.ExcludeOutboundPorts = "*" }, `-o "*": "*" is not allowed here`},
		{"star and ports", func(a *IstioArgs) { a.IncludeInboundPorts = "*,80" }, `-b "*,80": "*" cannot be combined with ports`},
		{"bad cidr", func(a *IstioArgs) { a.ExcludeOutboundIPRanges = "10.0.0.0/40" }, `-x "10.0.0.0/40": CIDR "10.0.0.0/40": netip.ParsePrefix("10.0.0.0/40"): prefix length out of range`},
		{"ipv6", func(a *IstioArgs) { a.IncludeOutboundIPRanges = "fd00::/8" }, `capture: CIDR fd00::/8: only IPv4 ranges are supported`},
		{"same ports", func(a *IstioArgs) { a.InboundPort = 15001 }, `capture: outbound and inbound port are both 15001`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := injectorDefaults()
			tt.edit(&a)
			if _, err := a.Config(); err == nil || err.Error() != tt.want {
				t.Errorf("error = %v\nwant    %s", err, tt.want)
			}
		})
	}
}

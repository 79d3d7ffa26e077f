package capture

import (
	"context"
	"flag"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRulesGolden(t *testing.T) {
	bookinfo := Default()
	bookinfo.InboundAllPorts = false
	bookinfo.InboundPorts = []uint16{9080}
	bookinfo.ExcludeInboundPorts = nil

	custom := Default()
	custom.IncludeOutboundCIDRs = []netip.Prefix{netip.MustParsePrefix("10.250.0.0/16"), netip.MustParsePrefix("240.240.0.0/16")}
	custom.ExcludeOutboundCIDRs = []netip.Prefix{netip.MustParsePrefix("10.250.0.1/32")}
	custom.ExcludeOutboundPorts = []uint16{5432, 5432}
	custom.IncludeOutboundPorts = []uint16{443}
	custom.ExcludeInboundPorts = append(custom.ExcludeInboundPorts, 15000)

	noInbound := Default()
	noInbound.InboundAllPorts = false

	cases := []struct {
		name string
		cfg  Config
	}{
		{"istio-default", Default()},
		{"bookinfo-ports", bookinfo},
		{"include-exclude", custom},
		{"outbound-only", noInbound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			got := Script(tc.cfg)
			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if got != string(want) {
				t.Errorf("rules differ from %s (run with -update):\n%s", path, got)
			}
		})
	}
}

func TestRulesSemantics(t *testing.T) {
	rules := Rules(Default())
	idx := func(rule string) int {
		for i, r := range rules {
			if r == rule {
				return i
			}
		}
		t.Fatalf("rule %q missing from:\n%s", rule, strings.Join(rules, "\n"))
		return -1
	}
	// The sidecar's traffic leaves uncaptured, but only after its
	// traffic to the pod itself was sent back in.
	in := idx("-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT")
	own := idx("-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN")
	lo := idx("-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN")
	if !(in < lo && lo < own) {
		t.Errorf("ISTIO_OUTPUT order: in-redirect %d, app loopback %d, sidecar %d", in, lo, own)
	}
	last := idx("-A ISTIO_OUTPUT -j ISTIO_REDIRECT")
	if last != len(rules)-2 || rules[len(rules)-1] != "COMMIT" {
		t.Errorf("catch-all redirect must be last before COMMIT")
	}
	// Istio's own ports and the sidecar's listeners are never captured inbound.
	for _, p := range []string{"15001", "15006", "15008", "15020", "15021", "15090"} {
		idx("-A ISTIO_INBOUND -p tcp --dport " + p + " -j RETURN")
	}
}

func TestValidate(t *testing.T) {
	bad := Default()
	bad.InboundPort = bad.OutboundPort
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "both 15001") {
		t.Errorf("same ports: got %v", err)
	}
	v6 := Default()
	v6.ExcludeOutboundCIDRs = []netip.Prefix{netip.MustParsePrefix("fd00::/8")}
	if err := v6.Validate(); err == nil || !strings.Contains(err.Error(), "IPv4") {
		t.Errorf("v6 CIDR: got %v", err)
	}
}

func TestParse(t *testing.T) {
	ps, all, err := ParsePorts("9080, 9443,*")
	if err != nil || !all || len(ps) != 2 || ps[1] != 9443 {
		t.Errorf("ParsePorts = %v %v %v", ps, all, err)
	}
	if _, _, err := ParsePorts("70000"); err == nil {
		t.Error("ParsePorts(70000): no error")
	}
	cs, err := ParseCIDRs("10.0.0.0/8,192.168.1.0/24")
	if err != nil || len(cs) != 2 {
		t.Errorf("ParseCIDRs = %v %v", cs, err)
	}
	if _, err := ParseCIDRs("10.0.0.0/33"); err == nil {
		t.Error("ParseCIDRs(/33): no error")
	}
}

type fakeRunner struct{ calls []string }

func (f *fakeRunner) Run(_ context.Context, stdin, name string, args ...string) ([]byte, error) {
	line := name + " " + strings.Join(args, " ")
	if stdin != "" {
		line += " <" + strconv.Itoa(strings.Count(stdin, "\n"))
	}
	f.calls = append(f.calls, line)
	return nil, nil
}

func TestApplierCommands(t *testing.T) {
	f := &fakeRunner{}
	a := Applier{Runner: f, Netns: "bowline-x"}
	if err := a.Apply(context.Background(), Default()); err != nil {
		t.Fatal(err)
	}
	last := f.calls[len(f.calls)-1]
	if !strings.HasPrefix(last, "ip netns exec bowline-x iptables-restore --noflush <") {
		t.Errorf("last call = %q", last)
	}
	if len(f.calls) != len(CleanupRules())+1 {
		t.Errorf("%d calls, want cleanup then restore", len(f.calls))
	}
	f.calls = nil
	Applier{Runner: f}.Cleanup(context.Background())
	if f.calls[0] != "iptables -t nat -D PREROUTING -p tcp -j ISTIO_INBOUND" {
		t.Errorf("cleanup without netns = %q", f.calls[0])
	}
}

// TestApplyInNetns installs the rules in a throwaway network namespace and
// reads them back with iptables -S (root only).
func TestApplyInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and runs iptables in it")
	}
	for _, p := range []string{"ip", "iptables", "iptables-restore"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("needs %s (apt-get install -y iproute2 iptables)", p)
		}
	}
	ns := "bowline-capture-test"
	_ = exec.Command("ip", "netns", "del", ns).Run()
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		if strings.Contains(string(out), "not permitted") {
			t.Skipf("root here may not create network namespaces (a container without CAP_SYS_ADMIN/NET_ADMIN): %s", out)
		}
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	ctx := context.Background()
	a := Applier{Netns: ns}
	for range 2 { // idempotent
		if err := a.Apply(ctx, Default()); err != nil {
			t.Fatal(err)
		}
	}
	got, err := a.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"-A PREROUTING -p tcp -j ISTIO_INBOUND",
		"-A OUTPUT -p tcp -j ISTIO_OUTPUT",
		"-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
		"-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
		"-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN",
	} {
		if strings.Count(got, want+"\n") != 1 {
			t.Errorf("want exactly one %q in:\n%s", want, got)
		}
	}
	a.Cleanup(ctx)
	got, err = a.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got, "ISTIO") {
		t.Errorf("after cleanup:\n%s", got)
	}
}

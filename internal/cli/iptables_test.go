package cli

import (
	"os"
	"strings"
	"testing"
)

func TestIPTablesDryRun(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		// What the injector writes for a pod without traffic annotations.
		{"injector_default", []string{"iptables", "--dry-run", "-p", "15001", "-z", "15006", "-u", "1337", "-g", "1337", "-m", "REDIRECT",
			"-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020"}},
		{"annotations", []string{"iptables", "--dry-run", "-i", "10.96.0.0/12,10.244.0.0/16", "-x", "10.96.0.1/32", "-b", "8080,8443",
			"-d", "15090,15021,9901,15020", "-o", "5432"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := run(t, "", tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden(t, "iptables_"+tt.name, out)
		})
	}
	// The injector's defaults are the rules `bowline up --netns` installs.
	want, err := os.ReadFile("../capture/testdata/istio-default.golden")
	if err != nil {
		t.Fatal(err)
	}
	if out, _, _ := run(t, "", tests[0].args...); out != string(want) {
		t.Errorf("injector defaults differ from capture's istio-default rules:\n%s", out)
	}
}

func TestIPTablesErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"iptables", "--dry-run", "-m", "TPROXY"}, "error: -m \"TPROXY\": only REDIRECT interception is supported\n"},
		{[]string{"iptables", "--dry-run", "-b", "80,x"}, "error: -b \"80,x\": port \"x\": want a number from 1 to 65535\n"},
		{[]string{"iptables", "--dry-run", "-i", "bad"}, "error: -i \"bad\": CIDR \"bad\": "},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[2:], " "), func(t *testing.T) {
			_, errOut, code := run(t, "", tt.args...)
			if code != 2 || !strings.HasPrefix(errOut, tt.want) {
				t.Errorf("exit %d stderr %q, want 2 %q", code, errOut, tt.want)
			}
		})
	}
}

package cli

import (
	"testing"
)

func TestDiscoveryUsageErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no config dir", []string{"discovery", "--insecure-xds"}, "error: --config-dir is required (or --kubeconfig, or run in a Kubernetes pod)\n"},
		{"tls needs a CA", []string{"discovery", "--config-dir", dir}, "error: --ca-dir is required for xDS over mTLS (or pass --insecure-xds)\n"},
		{"cert ttl over 90 days", []string{"discovery", "--config-dir", dir, "--ca-dir", dir + "/ca", "--workload-cert-ttl", "2200h"}, "error: --workload-cert-ttl 2200h0m0s: want more than 0 and at most 2160h0m0s\n"},
		{"bad bootstrap token", []string{"discovery", "--config-dir", dir, "--ca-dir", dir + "/ca", "--bootstrap-token", "web"}, "error: --bootstrap-token \"web\": want NAMESPACE/SERVICE_ACCOUNT=FILE\n"},
		{"token without CA", []string{"discovery", "--insecure-xds", "--config-dir", dir, "--bootstrap-token", "default/web=x"}, "error: --bootstrap-token and --ca-address need --ca-dir\n"},
		{"missing dir", []string{"discovery", "--insecure-xds", "--config-dir", dir + "/nope"}, "error: config dir: stat " + dir + "/nope: no such file or directory\n"},
		{"debounce max", []string{"discovery", "--insecure-xds", "--config-dir", dir, "--debounce", "2s", "--debounce-max", "1s"}, "error: debounce max 1s is shorter than the debounce quiet period 2s\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := run(t, "", tt.args...)
			if code != 2 || errOut != tt.wantErr {
				t.Errorf("exit %d stderr %q, want 2 and %q", code, errOut, tt.wantErr)
			}
		})
	}
}

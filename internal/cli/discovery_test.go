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
		{"no config dir", []string{"discovery", "--insecure-xds"}, "error: --config-dir is required\n"},
		{"tls not available", []string{"discovery", "--config-dir", dir}, "error: xDS over TLS needs the CA, which is not available yet: pass --insecure-xds to serve plaintext xDS on a trusted network\n"},
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

package cli

import (
	"os"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	bad, err := os.ReadFile("testdata/validate/bad/reviews.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		stdin    string
		args     []string
		wantCode int
	}{
		{"good_text", "", []string{"validate", "-f", "testdata/validate/good"}, 0},
		{"good_json", "", []string{"validate", "-f", "testdata/validate/good/reviews.yaml", "-o", "json"}, 0},
		{"bad_text", "", []string{"validate", "-f", "testdata/validate/bad"}, 1},
		{"bad_json", "", []string{"validate", "-f", "testdata/validate/bad/reviews.yaml", "-o", "json"}, 1},
		{"bad_stdin", string(bad), []string{"validate", "-f", "-"}, 1},
		{"both_dirs", "", []string{"validate", "-f", "testdata/validate/good", "-f", "testdata/validate/bad"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := run(t, tt.stdin, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d; stderr: %s", code, tt.wantCode, errOut)
			}
			golden(t, "validate_"+tt.name, out)
		})
	}
}

func TestValidateUsageErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no input", []string{"validate"}, "error: no input: give one or more -f PATH (a file, a directory or - for stdin)\n"},
		{"missing file", []string{"validate", "-f", "testdata/validate/nope.yaml"}, "error: read testdata/validate/nope.yaml: stat testdata/validate/nope.yaml: no such file or directory\n"},
		{"bad output", []string{"validate", "-f", "testdata/validate/good", "-o", "xml"}, "error: unknown output format \"xml\": use text or json\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := run(t, "", tt.args...)
			if code != 2 {
				t.Errorf("exit code = %d, want 2", code)
			}
			if errOut != tt.wantErr {
				t.Errorf("stderr = %q, want %q", errOut, tt.wantErr)
			}
		})
	}
}

// TestValidateBookinfoSamples: every Istio YAML of the Bookinfo sample
// (routing scenarios, policies, the local platform) is accepted.
func TestValidateBookinfoSamples(t *testing.T) {
	out, errOut, code := run(t, "", "validate", "-f", "../../samples/bookinfo")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if !strings.HasPrefix(out, "✔ ") {
		t.Errorf("summary = %q", out)
	}
}

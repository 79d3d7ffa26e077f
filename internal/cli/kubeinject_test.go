package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKubeInject(t *testing.T) {
	in, err := os.ReadFile("testdata/kubeinject/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		stdin string
		args  []string
	}{
		{"default", "", []string{"kube-inject", "-f", "testdata/kubeinject/deployment.yaml"}},
		{"stdin_mesh_classic", string(in), []string{"kube-inject", "-f", "-", "--mesh-config", "testdata/kubeinject/mesh.yaml",
			"--classic", "--image", "registry.example.com/bowline:v9", "--revision", "canary"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := run(t, tt.stdin, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden(t, "kubeinject_"+tt.name, out)
		})
	}
	t.Run("output file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "out.yaml")
		out, errOut, code := run(t, "", "kube-inject", "-f", "testdata/kubeinject/deployment.yaml", "-o", path)
		if code != 0 || out != "" {
			t.Fatalf("exit %d, stdout %q: %s", code, out, errOut)
		}
		b, err := os.ReadFile(path)
		if err != nil || !strings.Contains(string(b), "name: istio-proxy") {
			t.Errorf("output file: %v\n%s", err, b)
		}
	})
}

func TestKubeInjectErrors(t *testing.T) {
	tests := []struct {
		name, stdin string
		args        []string
		code        int
		stderr      string
	}{
		{"no input", "", []string{"kube-inject"}, 2, "error: no input: give -f FILE (or - for stdin)\n"},
		{"bad mesh", "", []string{"kube-inject", "-f", "-", "--mesh-config", "testdata/kubeinject/deployment.yaml"}, 2,
			"error: --mesh-config testdata/kubeinject/deployment.yaml: not a MeshConfig: "},
		{"bad annotation", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    sidecar.istio.io/logLevel: loud\nspec:\n  containers:\n  - name: a\n    image: a\n",
			[]string{"kube-inject", "-f", "-"}, 1,
			"error: -: document 1: Pod p: annotation sidecar.istio.io/logLevel: value \"loud\": want one of trace, debug, info, warning, warn, error, critical, off\n"},
		{"skipped", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels:\n    sidecar.istio.io/inject: \"false\"\nspec:\n  containers:\n  - name: a\n    image: a\n",
			[]string{"kube-inject", "-f", "-"}, 0, "skipping Pod p: sidecar injection is disabled (sidecar.istio.io/inject: \"false\")\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := run(t, tt.stdin, tt.args...)
			if code != tt.code || !strings.HasPrefix(errOut, tt.stderr) {
				t.Errorf("exit %d stderr %q, want %d %q", code, errOut, tt.code, tt.stderr)
			}
		})
	}
}

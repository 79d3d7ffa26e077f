package manifest

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerate(t *testing.T) {
	objs, err := Objects(Options{Version: "v1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	var images []string
	for _, o := range objs {
		kinds[o.GetKind()]++
		if o.GetKind() == "Deployment" {
			cs, _, _ := unstructuredContainers(o)
			images = append(images, cs...)
		}
	}
	want := map[string]int{"Namespace": 1, "CustomResourceDefinition": 15, "ServiceAccount": 2, "ClusterRole": 1, "ClusterRoleBinding": 1,
		"Role": 1, "RoleBinding": 1, "ConfigMap": 1, "Deployment": 2, "Service": 2, "ValidatingWebhookConfiguration": 1,
		"MutatingWebhookConfiguration": 1}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("%d %s, want %d (all: %v)", kinds[k], k, n, kinds)
		}
	}
	if got := strings.Join(images, ","); got != "docker.io/bowline-mesh/bowline:v1.2.3,docker.io/bowline-mesh/bowline:v1.2.3" {
		t.Errorf("images %s", got)
	}
}

func TestSetValues(t *testing.T) {
	out, err := Templates(Options{Version: "v1", Set: map[string]string{"hub": "example.com/me", "tag": "t1", "revision": "canary"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"image: example.com/me/bowline:t1", "name: istiod-canary\n", "istio.io/rev: canary", "name: rev.validation.istio.io",
		"--webhook-config=istio-validator-canary-istio-system", "--injector-webhook-config=istio-sidecar-injector-canary", "--revision=canary",
		"name: istio-sidecar-injector-canary\n", "{key: istio.io/rev, operator: In, values: [canary]}", "discoveryAddress: istiod-canary.istio-system.svc:15012"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	// A revision's injector serves only istio.io/rev=REVISION; the
	// istio-injection label belongs to the default revision.
	for _, unwanted := range []string{"name: namespace.sidecar-injector.istio.io", "name: object.sidecar-injector.istio.io"} {
		if strings.Contains(string(out), unwanted) {
			t.Errorf("revision canary renders %q", unwanted)
		}
	}
	if _, err := Templates(Options{Set: map[string]string{"hubb": "x"}}); err == nil || err.Error() != "--set hubb: unknown value (known: enableAnalysis, gatewayServiceType, hub, revision, tag, trustDomain, writeStatus)" {
		t.Errorf("unknown key: %v", err)
	}
}

func TestStatusValues(t *testing.T) {
	for _, tc := range []struct {
		name          string
		set           map[string]string
		want, unwant  []string
		wantErrString string
	}{
		{name: "defaults: status written, no analysis", unwant: []string{"--write-status=false", "--enable-analysis"}},
		{name: "analysis on", set: map[string]string{"enableAnalysis": "true"}, want: []string{"- --enable-analysis\n"}},
		{name: "status off", set: map[string]string{"writeStatus": "false"}, want: []string{"- --write-status=false\n"}, unwant: []string{"--enable-analysis"}},
		{name: "not a boolean", set: map[string]string{"enableAnalysis": "yes please"}, wantErrString: "--set enableAnalysis=yes please: want true or false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Templates(Options{Version: "v1", Set: tc.set})
			if tc.wantErrString != "" {
				if err == nil || err.Error() != tc.wantErrString {
					t.Fatalf("error %v, want %q", err, tc.wantErrString)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("no %q in the discovery Deployment", w)
				}
			}
			for _, u := range tc.unwant {
				if strings.Contains(string(out), u) {
					t.Errorf("%q rendered", u)
				}
			}
		})
	}
}

func unstructuredContainers(o interface {
	UnstructuredContent() map[string]any
}) ([]string, bool, error) {
	spec, _ := o.UnstructuredContent()["spec"].(map[string]any)
	tmpl, _ := spec["template"].(map[string]any)
	pspec, _ := tmpl["spec"].(map[string]any)
	cs, _ := pspec["containers"].([]any)
	var images []string
	for _, c := range cs {
		images = append(images, c.(map[string]any)["image"].(string))
	}
	return images, true, nil
}

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// TestTemplatesGolden records what install applies from the chart; the
// Helm check (hack/helmcheck) compares `helm template` with this file.
func TestTemplatesGolden(t *testing.T) {
	got, err := Templates(Options{Version: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "templates.golden.yaml")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Templates differ from %s (go test -update to refresh):\n%s", path, got)
	}
}

// TestCRDsAreIstioAPIs checks that the embedded CRDs are the istio.io/api
// module's file as it is (go generate refreshes them).
func TestCRDsAreIstioAPIs(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/api").Output()
	if err != nil {
		t.Fatalf("go list istio.io/api: %v", err)
	}
	want, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "kubernetes", "customresourcedefinitions.gen.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, got, _ := bytes.Cut(CRDs(), []byte("\n"))
	if !bytes.Equal(got, want) {
		t.Error("chart/crds/crds.gen.yaml is not istio.io/api's CRDs: run go generate ./internal/kube/manifest")
	}
}

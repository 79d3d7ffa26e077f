// Package helmcheck checks the Helm chart of internal/kube/manifest/chart
// with Helm's own template engine (helm.sh/helm/v3): `helm template` of the
// chart must give exactly the objects `bowline install` applies, whose
// rendering the main module records in testdata/templates.golden.yaml. It is
// its own module so that Helm's dependencies stay out of the product's go.mod.
package helmcheck

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"sigs.k8s.io/yaml"
)

const manifestDir = "../../internal/kube/manifest"

// objects splits multi-document YAML into normalised JSON by "Kind namespace/name".
func objects(t *testing.T, data string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, doc := range regexp.MustCompile(`(?m)^---[ \t]*$`).Split(data, -1) {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("%v in:\n%s", err, doc)
		}
		if len(m) == 0 {
			continue
		}
		meta, _ := m["metadata"].(map[string]any)
		kind, _ := m["kind"].(string)
		ns, _ := meta["namespace"].(string)
		name, _ := meta["name"].(string)
		key := kind + " " + strings.TrimPrefix(ns+"/", "/") + name
		if _, dup := out[key]; dup {
			t.Fatalf("%s rendered twice", key)
		}
		js, _ := json.Marshal(m)
		out[key] = string(js)
	}
	return out
}

func TestHelmTemplateMatchesInstall(t *testing.T) {
	chrt, err := loader.Load(filepath.Join(manifestDir, "chart"))
	if err != nil {
		t.Fatal(err)
	}
	vals, err := chartutil.ToRenderValues(chrt, map[string]any{}, chartutil.ReleaseOptions{Name: "bowline", Namespace: "istio-system", IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := engine.Render(chrt, vals)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for name := range rendered {
		names = append(names, name)
	}
	sort.Strings(names)
	var helmOut bytes.Buffer
	for _, name := range names {
		if strings.HasSuffix(name, ".tpl") || strings.HasSuffix(name, "NOTES.txt") {
			continue
		}
		helmOut.WriteString("\n---\n" + rendered[name])
	}
	golden, err := os.ReadFile(filepath.Join(manifestDir, "testdata", "templates.golden.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got, want := objects(t, helmOut.String()), objects(t, string(golden))
	for k, w := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("helm template does not render %s", k)
		} else if g != w {
			t.Errorf("%s differs:\nhelm:    %s\nbowline: %s", k, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("helm template renders %s, which bowline install does not apply", k)
		}
	}
	if len(chrt.CRDObjects()) != 1 {
		t.Errorf("chart has %d CRD files, want crds/crds.gen.yaml", len(chrt.CRDObjects()))
	}
}

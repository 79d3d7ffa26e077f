// Package bookinfo_test checks that every configuration file of the Bookinfo
// sample loads through Bowline's own loader with its strict schema check:
// Istio kinds with exactly Istio's field names, and Bowline Workloads.
package bookinfo_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/bowline-mesh/bowline/internal/config"
)

func yamlFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// platform/kube holds Istio's Kubernetes manifest (Deployments,
		// Services), which the cluster runs, not mesh configuration.
		if d.IsDir() && p == filepath.Join("platform", "kube") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".yaml") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

func load(t *testing.T, file string) []*config.Object {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	res := config.Parse(file, data, config.ParseOptions{})
	for _, p := range res.Problems {
		t.Errorf("load: %s", p)
	}
	for _, s := range res.Skipped {
		t.Errorf("not configuration: %s", s)
	}
	return res.Objects
}

func TestEveryFileLoads(t *testing.T) {
	files := yamlFiles(t)
	if len(files) < 30 {
		t.Fatalf("found only %d YAML files", len(files))
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			if objs := load(t, f); len(objs) == 0 && !t.Failed() {
				t.Error("no objects")
			}
		})
	}
}

// TestLocalPlatform checks what `bowline up` gets: a service and its
// workloads for each of the four services, and six workloads in all.
func TestLocalPlatform(t *testing.T) {
	objs := load(t, "platform/local/bookinfo.yaml")
	kinds := map[string][]string{}
	for _, o := range objs {
		kinds[o.GVK.Kind] = append(kinds[o.GVK.Kind], o.Meta.Name)
	}
	got := strings.Join(kinds["ServiceEntry"], ",")
	if got != "details,ratings,reviews,productpage" {
		t.Errorf("ServiceEntries = %s", got)
	}
	got = strings.Join(kinds["Workload"], ",")
	if got != "details-v1,ratings-v1,reviews-v1,reviews-v2,reviews-v3,productpage-v1" {
		t.Errorf("Workloads = %s", got)
	}
}

// TestLocalCopies keeps the copies in platform/local equal to the originals
// in networking, apart from their leading comment.
func TestLocalCopies(t *testing.T) {
	strip := func(file string) string {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		s := string(data)
		return s[strings.Index(s, "apiVersion:"):]
	}
	for _, name := range []string{"bookinfo-gateway.yaml", "destination-rule-all.yaml"} {
		if strip("platform/local/"+name) != strip("networking/"+name) {
			t.Errorf("platform/local/%s differs from networking/%s", name, name)
		}
	}
}

package analysis

import (
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/bowline-mesh/bowline/internal/config"
)

// services is a registry for the tests: reviews and ratings in default,
// with one and two ports.
const services = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: services
spec:
  hosts:
  - reviews.default.svc.cluster.local
  - productpage.default.svc.cluster.local
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - number: 9080
    name: http
    protocol: HTTP
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ratings
spec:
  hosts:
  - ratings.default.svc.cluster.local
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - number: 9080
    name: http
    protocol: HTTP
  - number: 9090
    name: grpc
    protocol: GRPC
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
  - name: v1
    labels:
      version: v1
`

// run parses the named documents and analyzes them with analyzers (all when none).
func run(t *testing.T, files map[string]string, analyzers ...Analyzer) []string {
	t.Helper()
	in := Input{Sources: map[string][]byte{}}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		res := config.Parse(name, []byte(files[name]), config.ParseOptions{})
		in.Objects = append(in.Objects, res.Objects...)
		in.Problems = append(in.Problems, res.Problems...)
		in.Skipped = append(in.Skipped, res.Skipped...)
		in.Sources[name] = []byte(files[name])
	}
	var out []string
	for _, m := range Analyze(in, Options{}, analyzers...) {
		out = append(out, m.String())
	}
	return out
}

func check(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("messages:\n got:\n  %s\n want:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

type testCase struct {
	name string
	yaml string
	want []string
}

func runCases(t *testing.T, cases []testCase, analyzers ...Analyzer) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			check(t, run(t, map[string]string{"services.yaml": services, "test.yaml": tc.yaml}, analyzers...), tc.want)
		})
	}
}

func TestBookinfoIsClean(t *testing.T) {
	data, err := os.ReadFile("testdata/bookinfo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	check(t, run(t, map[string]string{"bookinfo.yaml": string(data)}), nil)
}

func TestBookinfoWithoutServicesReportsHosts(t *testing.T) {
	data, err := os.ReadFile("testdata/bookinfo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	doc = doc[:strings.LastIndex(doc, "---")]
	got := run(t, map[string]string{"bookinfo.yaml": doc}, destinationHostAnalyzer{})
	check(t, got, []string{
		`Error [IST0101] (VirtualService default/bookinfo bookinfo.yaml:39) Referenced host not found: "productpage"`,
		`Error [IST0101] (VirtualService default/productpage bookinfo.yaml:103) Referenced host not found: "productpage"`,
		`Error [IST0101] (VirtualService default/reviews bookinfo.yaml:116) Referenced host not found: "reviews"`,
		`Error [IST0101] (VirtualService default/ratings bookinfo.yaml:129) Referenced host not found: "ratings"`,
		`Error [IST0101] (VirtualService default/details bookinfo.yaml:142) Referenced host not found: "details"`,
	})
}

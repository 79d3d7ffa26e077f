package validation

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bowline-mesh/bowline/internal/config"
)

// secCase is one document and the exact problems it must produce, rendered
// as users see them ("file:line: Kind ns/name: field: reason").
type secCase struct {
	name string
	doc  string
	want []string
}

// secProblems parses doc as file and returns every validation problem of
// its objects, rendered. The document must load without schema problems.
func secProblems(t *testing.T, file, doc string) []string {
	t.Helper()
	res := config.Parse(file, []byte(doc), config.ParseOptions{})
	if len(res.Problems) > 0 {
		t.Fatalf("document does not load:\n%s", res.Problems.Error())
	}
	if len(res.Objects) == 0 {
		t.Fatalf("document holds no objects")
	}
	var got []string
	for _, obj := range res.Objects {
		for _, fe := range Object(obj) {
			got = append(got, config.ProblemFor(obj, fe).String())
		}
	}
	return got
}

// secRunCases runs a table of documents, each read as file.
func secRunCases(t *testing.T, file string, cases []secCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := secProblems(t, file, tc.doc)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestSecurityValidSamples loads Istio's own policy samples (Bookinfo and
// the security tasks) and expects no problem at all.
func TestSecurityValidSamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "security", "valid-*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no valid samples found")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if got := secProblems(t, f, string(data)); len(got) > 0 {
				t.Errorf("problems in a valid sample:\n%s", strings.Join(got, "\n"))
			}
		})
	}
}

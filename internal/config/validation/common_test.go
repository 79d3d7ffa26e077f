package validation

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bowline-mesh/bowline/internal/config"
)

// networkingCase is one document and every problem it must produce, rendered
// as Bowline prints them (file:line: Kind ns/name: field: reason).
type networkingCase struct {
	name string
	file string
	doc  string
	want []string
}

// render parses doc, which must load cleanly into exactly one object, and
// returns the rendered semantic problems.
func render(t *testing.T, file, doc string) []string {
	t.Helper()
	res := config.Parse(file, []byte(doc), config.ParseOptions{})
	if len(res.Problems) > 0 {
		t.Fatalf("document does not load: %v", res.Problems)
	}
	if len(res.Objects) != 1 {
		t.Fatalf("got %d objects, want 1", len(res.Objects))
	}
	obj := res.Objects[0]
	var got []string
	for _, fe := range Object(obj) {
		got = append(got, config.ProblemFor(obj, fe).String())
	}
	return got
}

func runNetworkingCases(t *testing.T, cases []networkingCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := tc.file
			if file == "" {
				file = "f.yaml"
			}
			got := render(t, file, tc.doc)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("problems:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(tc.want, "\n      "))
			}
		})
	}
}

// TestValidNetworking loads every document under testdata/networking/valid
// (Bookinfo's routing samples and other shapes Istio accepts) and requires
// no problem at all, not even a warning.
func TestValidNetworking(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "networking", "valid", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 20 {
		t.Fatalf("found %d valid documents, want the Bookinfo samples and more", len(files))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			res := config.Parse(file, data, config.ParseOptions{})
			if len(res.Problems) > 0 {
				t.Fatalf("does not load: %v", res.Problems)
			}
			if len(res.Objects) == 0 {
				t.Fatal("no objects")
			}
			_, problems := Objects(res.Objects)
			for _, p := range problems {
				t.Errorf("unexpected problem: %s", p)
			}
		})
	}
}

func TestHostRules(t *testing.T) {
	tests := []struct {
		host             string
		fqdn, wildcard   bool
		partialWildcard  bool
		matchesWildcardC bool // overlaps "*.example.com"
	}{
		{host: "reviews", fqdn: true, wildcard: true, partialWildcard: true},
		{host: "reviews.default.svc.cluster.local", fqdn: true, wildcard: true, partialWildcard: true},
		{host: "istio.io.", fqdn: true, wildcard: true, partialWildcard: true},
		{host: "Reviews.Default", fqdn: true, wildcard: true, partialWildcard: true},
		{host: "*", wildcard: true, partialWildcard: true, matchesWildcardC: true},
		{host: "*.example.com", wildcard: true, partialWildcard: true, matchesWildcardC: true},
		{host: "a.example.com", fqdn: true, wildcard: true, partialWildcard: true, matchesWildcardC: true},
		{host: "*foo.example.com", wildcard: true, matchesWildcardC: true},
		{host: "foo.*.com"},
		{host: "foo*.com"},
		{host: "example.123", partialWildcard: true},
		{host: "", partialWildcard: true},
		{host: "-bad.com", partialWildcard: true},
		{host: "a..b", partialWildcard: true},
		{host: strings.Repeat("a", 64) + ".com", partialWildcard: true},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			if got := fqdnProblem(tc.host) == ""; got != tc.fqdn {
				t.Errorf("fqdn valid = %v, want %v (%s)", got, tc.fqdn, fqdnProblem(tc.host))
			}
			if got := wildcardDomainProblem(tc.host) == ""; got != tc.wildcard {
				t.Errorf("wildcard domain valid = %v, want %v (%s)", got, tc.wildcard, wildcardDomainProblem(tc.host))
			}
			if got := partialWildcardProblem(tc.host) == ""; got != tc.partialWildcard {
				t.Errorf("partial wildcard ok = %v, want %v", got, tc.partialWildcard)
			}
			if tc.wildcard {
				if got := hostMatches(tc.host, "*.example.com"); got != tc.matchesWildcardC {
					t.Errorf("matches *.example.com = %v, want %v", got, tc.matchesWildcardC)
				}
			}
		})
	}
}

func TestHostSubsetOf(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"a.example.com", "*.example.com", true},
		{"*.a.example.com", "*.example.com", true},
		{"*.example.com", "a.example.com", false},
		{"*.example.com", "*", true},
		{"a.example.com", "a.example.com", true},
		{"a.example.com", "b.example.com", false},
	}
	for _, tc := range tests {
		if got := hostSubsetOf(tc.a, tc.b); got != tc.want {
			t.Errorf("hostSubsetOf(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestHeaderValue(t *testing.T) {
	tests := []struct {
		v  string
		ok bool
	}{
		{"foo", true},
		{"%HOSTNAME%", true},
		{"100%%", true},
		{"prefix %HOSTNAME% suffix", true},
		{`%REQ(x-foo)%`, true},
		{`%PER_REQUEST_STATE(["a", "b"])%`, true},
		{"abc%123", false},
		{"%START_TIME%%", false},
		{"50%", false},
		{"a\nb", false},
		{"tab\tok", true},
	}
	for _, tc := range tests {
		if got := headerValueProblem(tc.v) == ""; got != tc.ok {
			t.Errorf("headerValueProblem(%q) ok = %v, want %v (%s)", tc.v, got, tc.ok, headerValueProblem(tc.v))
		}
	}
}

func TestRegexProblem(t *testing.T) {
	if msg := regexProblem(`^/api/v[0-9]+/.*$`); msg != "" {
		t.Errorf("valid regex rejected: %s", msg)
	}
	if msg := regexProblem(`(?<=a)b`); !strings.HasPrefix(msg, "invalid RE2 regex: ") {
		t.Errorf("lookbehind (not RE2) = %q", msg)
	}
	if msg := regexProblem(strings.Repeat("a", 1025)); msg != "regex is too long (1025 characters, at most 1024)" {
		t.Errorf("long regex = %q", msg)
	}
}

// FuzzValidate parses arbitrary bytes and validates every object: whatever
// the input, neither the loader nor any validator may panic.
func FuzzValidate(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "networking", "valid", "*.yaml"))
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	for _, cases := range [][]networkingCase{virtualServiceCases, destinationRuleCases, gatewayCases, serviceEntryCases, sidecarCases, workloadCases} {
		for _, tc := range cases {
			f.Add([]byte(tc.doc))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res := config.Parse("fuzz.yaml", data, config.ParseOptions{})
		for _, obj := range res.Objects {
			for _, fe := range Object(obj) {
				if fe.Path == "" || fe.Reason == "" {
					t.Fatalf("problem without path or reason: %+v", fe)
				}
				_ = config.ProblemFor(obj, fe).String()
			}
		}
	})
}

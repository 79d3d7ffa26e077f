package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/spf13/cobra"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/config/validation"
)

type validateOptions struct {
	files     []string
	namespace string
	output    string
}

func newValidateCommand(s streams) *cobra.Command {
	o := &validateOptions{}
	cmd := &cobra.Command{
		Use:   "validate -f PATH...",
		Short: "Check Istio configuration files against Istio's schema and validation rules",
		Long: `Validate reads Istio configuration (VirtualService, DestinationRule, Gateway,
ServiceEntry, Sidecar, WorkloadEntry, WorkloadGroup, EnvoyFilter, ProxyConfig,
PeerAuthentication, AuthorizationPolicy, RequestAuthentication, Telemetry), the
Kubernetes Gateway API (GatewayClass, Gateway, HTTPRoute, GRPCRoute, TCPRoute,
TLSRoute, ReferenceGrant; checked with the v1.6 CRDs' schema and CEL rules) and
Bowline's Workload kind from files, directories (recursively: *.yaml, *.yml, *.json)
or standard input, and reports every problem with its file:line, resource, field
path and reason. Documents of other kinds are skipped with a note.

Exit status: 0 when everything is valid (warnings allowed), 1 when any document has
an error, 2 on usage errors or unreadable paths.`,
		Example: `  # Validate the Bookinfo sample
  bowline validate -f samples/bookinfo

  # Validate one file from standard input, for machines
  cat reviews.yaml | bowline validate -f - -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runValidate(s, o)
		},
	}
	cmd.Flags().StringArrayVarP(&o.files, "filename", "f", nil, "file, directory or - (stdin) to validate; repeatable")
	cmd.Flags().StringVarP(&o.namespace, "namespace", "n", config.DefaultNamespace, "namespace for documents without metadata.namespace")
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "output format: text or json")
	return cmd
}

// validateReport is the JSON form of a validate run.
type validateReport struct {
	Valid    bool             `json:"valid"`
	Files    int              `json:"files"`
	Objects  int              `json:"objects"`
	Errors   int              `json:"errors"`
	Warnings int              `json:"warnings"`
	Problems []config.Problem `json:"problems"`
	Skipped  []config.Skipped `json:"skipped"`
}

func runValidate(s streams, o *validateOptions) error {
	if len(o.files) == 0 {
		return &exitError{code: 2, err: errors.New("no input: give one or more -f PATH (a file, a directory or - for stdin)")}
	}
	if o.output != "text" && o.output != "json" {
		return &exitError{code: 2, err: fmt.Errorf("unknown output format %q: use text or json", o.output)}
	}
	loader := &config.Loader{Options: config.ParseOptions{Namespace: o.namespace}, Stdin: s.in}
	res, err := loader.Load(o.files...)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	_, vproblems := validation.Objects(res.Objects)
	problems := append(res.Problems, vproblems...)
	sortProblems(problems)

	rep := validateReport{Files: countFiles(res), Objects: len(res.Objects) + countFailedDocs(res.Problems), Problems: problems, Skipped: res.Skipped}
	if rep.Problems == nil {
		rep.Problems = []config.Problem{}
	}
	if rep.Skipped == nil {
		rep.Skipped = []config.Skipped{}
	}
	for _, p := range problems {
		if p.Severity == config.SeverityError {
			rep.Errors++
		} else {
			rep.Warnings++
		}
	}
	rep.Valid = rep.Errors == 0

	if o.output == "json" {
		enc := json.NewEncoder(s.out)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		for _, sk := range res.Skipped {
			fmt.Fprintln(s.err, "note:", sk.String())
		}
		for _, p := range problems {
			fmt.Fprintln(s.out, p.String())
		}
		fmt.Fprintln(s.out, validateSummary(rep))
	}
	if !rep.Valid {
		return &exitError{code: 1}
	}
	return nil
}

func validateSummary(r validateReport) string {
	files := plural(r.Files, "file")
	if r.Valid {
		msg := fmt.Sprintf("✔ %s in %s valid", plural(r.Objects, "object"), files)
		if r.Warnings > 0 {
			msg += fmt.Sprintf(" (%s)", plural(r.Warnings, "warning"))
		}
		return msg
	}
	msg := fmt.Sprintf("✘ %s in %s, %s", plural(r.Errors, "error"), files, plural(r.Objects, "object"))
	if r.Warnings > 0 {
		msg += fmt.Sprintf(", %s", plural(r.Warnings, "warning"))
	}
	return msg
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// countFiles counts the distinct files that held documents or problems.
func countFiles(res *config.Result) int {
	files := map[string]bool{}
	for _, o := range res.Objects {
		files[o.Source.File] = true
	}
	for _, p := range res.Problems {
		files[p.File] = true
	}
	for _, sk := range res.Skipped {
		files[sk.File] = true
	}
	return len(files)
}

// countFailedDocs counts documents that failed to decode (one object each).
func countFailedDocs(problems config.Problems) int {
	docs := map[string]bool{}
	for _, p := range problems {
		if p.Kind != "" {
			docs[p.Kind+" "+p.Namespace+"/"+p.Name+" "+p.File] = true
		}
	}
	return len(docs)
}

func sortProblems(ps config.Problems) {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].File != ps[j].File {
			return ps[i].File < ps[j].File
		}
		return ps[i].Line < ps[j].Line
	})
}

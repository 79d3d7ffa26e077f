package cli

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/config/analysis"
	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// Exit codes of analyze, as istioctl uses them (sysexits-style).
const (
	exitAnalyzeUsage       = 64 // bad flags or arguments
	exitAnalyzeFoundIssues = 79 // a message at or above --failure-threshold
)

// analysisDocs is where Istio documents every message code.
const analysisDocs = "https://istio.io/latest/docs/reference/config/analysis"

type analyzeOptions struct {
	files            []string
	namespace        string
	domain           string
	rootNamespace    string
	output           string
	failureThreshold string
	outputThreshold  string
	listAnalyzers    bool
	noCA             bool
}

func newAnalyzeCommand(s streams) *cobra.Command {
	o := &analyzeOptions{}
	cmd := &cobra.Command{
		Use:   "analyze -f PATH...",
		Short: "Analyze Istio configuration across resources and print Istio's analysis messages",
		Long: `Analyze loads Istio configuration from files, directories (recursively: *.yaml,
*.yml, *.json) or standard input and runs Istio's analyzers over all of it together:
references between resources (a VirtualService's hosts, subsets and gateways),
conflicts (gateways, mesh VirtualServices, DestinationRule TLS against
PeerAuthentication), rules that can never match, MeshConfig extension providers
(ConfigMap istio) whose service nothing defines, Telemetry naming providers the
MeshConfig lacks, and every schema problem. With --no-ca it also reports what a
mesh without a CA cannot honour: ISTIO_MUTUAL DestinationRules and STRICT
PeerAuthentications (Bowline's BWL0001).

Messages carry Istio's own codes and wording (IST0101 ReferencedResourceNotFound,
IST0106 SchemaValidationError, ...), so Istio's documentation for each code applies:
` + analysisDocs + `/ist0101/

Services are what the files define: ServiceEntry hosts, Kubernetes Services and
Bowline Workloads. A destination host nothing defines is reported, as
istioctl analyze --use-kube=false does.

Exit status: 0 when no message reaches --failure-threshold, 79 when one does (as
istioctl), 64 on usage errors, 1 when a path cannot be read.`,
		Example: `  # Analyze the Bookinfo sample
  bowline analyze -f samples/bookinfo/networking

  # Analyze several files, failing on warnings too (for CI)
  bowline analyze -f gateway.yaml -f reviews.yaml --failure-threshold Warning

  # Machine-readable output from standard input, errors only
  cat reviews.yaml | bowline analyze -f - -o json --output-threshold Error

  # Check configuration for a mesh without a CA (discovery --insecure-xds, up --insecure)
  bowline analyze -f ./mesh --no-ca

  # List the analyzers
  bowline analyze -L`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.files = append(o.files, args...)
			return runAnalyze(s, o)
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.files, "filename", "f", nil, "file, directory or - (stdin) to analyze; repeatable")
	f.StringVarP(&o.namespace, "namespace", "n", config.DefaultNamespace, "namespace for documents without metadata.namespace")
	f.StringVar(&o.domain, "domain", analysis.DefaultDomain, "DNS domain completing short host names (reviews -> reviews.<namespace>.svc.<domain>)")
	f.StringVar(&o.rootNamespace, "root-namespace", analysis.DefaultRootNamespace, "namespace holding mesh-wide policy")
	f.StringVarP(&o.output, "output", "o", analysis.FormatLog, "output format: one of "+strings.Join(analysis.Formats, ", "))
	f.StringVar(&o.failureThreshold, "failure-threshold", "Error", "severity at which to exit non-zero: Info, Warning or Error")
	f.StringVar(&o.outputThreshold, "output-threshold", "Info", "severity at which to print messages: Info, Warning or Error")
	f.BoolVarP(&o.listAnalyzers, "list-analyzers", "L", false, "list the analyzers and exit")
	f.BoolVar(&o.noCA, "no-ca", false, "analyze for a mesh without a CA (discovery --insecure-xds without --ca-dir, up --insecure): report ISTIO_MUTUAL and STRICT")
	return cmd
}

func runAnalyze(s streams, o *analyzeOptions) error {
	usage := func(format string, args ...any) error {
		return &exitError{code: exitAnalyzeUsage, err: fmt.Errorf(format, args...)}
	}
	if o.listAnalyzers {
		return listAnalyzers(s.out)
	}
	if !slices.Contains(analysis.Formats, o.output) {
		return usage("unknown output format %q: use one of %s", o.output, strings.Join(analysis.Formats, ", "))
	}
	failAt, err := analysis.ParseLevel(o.failureThreshold)
	if err != nil {
		return usage("--failure-threshold: %w", err)
	}
	showAt, err := analysis.ParseLevel(o.outputThreshold)
	if err != nil {
		return usage("--output-threshold: %w", err)
	}
	if len(o.files) == 0 {
		return usage("no input: give one or more -f PATH (a file, a directory or - for stdin)")
	}

	src := &sourceCache{data: map[string][]byte{}}
	loader := &config.Loader{
		Options:  config.ParseOptions{Namespace: o.namespace, MeshNamespace: o.rootNamespace},
		Stdin:    src.stdin(s.in),
		ReadFile: src.readFile,
	}
	res, err := loader.Load(o.files...)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	in := analysis.Input{Objects: res.Objects, Problems: res.Problems, Skipped: res.Skipped, Sources: src.snapshot()}
	msgs := analysis.Analyze(in, analysis.Options{Domain: o.domain, RootNamespace: o.rootNamespace, Namespace: o.namespace, NoCA: o.noCA,
		ProxySupports: xdsconfig.Supports})

	shown := analysis.Filter(msgs, showAt)
	if len(shown) > 0 || o.output != analysis.FormatLog {
		if err := analysis.Write(s.out, shown, o.output); err != nil {
			return err
		}
	}
	target := plural(src.count(), "file")
	if len(shown) == 0 {
		fmt.Fprintf(s.err, "\u2714 No validation issues found when analyzing %s.\n", target)
	}
	if len(analysis.Filter(msgs, failAt)) > 0 {
		//lint:ignore ST1005 istioctl's exact text, which users and scripts recognise
		return &exitError{code: exitAnalyzeFoundIssues, err: fmt.Errorf(
			"Analyzers found issues when analyzing %s.\nSee %s for more information about causes and resolutions", target, analysisDocs)}
	}
	return nil
}

func listAnalyzers(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ANALYZER\tDESCRIPTION")
	for _, a := range analysis.All() {
		fmt.Fprintf(tw, "%s\t%s\n", a.Name(), a.Description())
	}
	return tw.Flush()
}

// sourceCache keeps the bytes of every file the loader reads, so analysis
// can look at documents the loader skipped (Kubernetes Services), and counts
// the files read.
type sourceCache struct {
	mu   sync.Mutex
	data map[string][]byte
}

func (c *sourceCache) readFile(name string) ([]byte, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.data[name] = data
	c.mu.Unlock()
	return data, nil
}

// stdin returns a reader that records what it reads as "<stdin>", the name
// the loader gives standard input.
func (c *sourceCache) stdin(r io.Reader) io.Reader {
	if r == nil {
		return nil
	}
	return &recordingReader{r: r, c: c}
}

type recordingReader struct {
	r io.Reader
	c *sourceCache
}

func (rr *recordingReader) Read(p []byte) (int, error) {
	n, err := rr.r.Read(p)
	rr.c.mu.Lock()
	rr.c.data["<stdin>"] = append(rr.c.data["<stdin>"], p[:n]...)
	rr.c.mu.Unlock()
	return n, err
}

func (c *sourceCache) snapshot() map[string][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string][]byte, len(c.data))
	for k, v := range c.data {
		out[k] = v
	}
	return out
}

func (c *sourceCache) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.data)
}

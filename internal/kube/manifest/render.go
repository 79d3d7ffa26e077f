package manifest

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// DefaultNamespace is where the control plane is installed.
const DefaultNamespace = "istio-system"

// chartFS is the Helm chart: Chart.yaml, values.yaml, templates/ and crds/.
//
//go:embed chart/Chart.yaml chart/values.yaml all:chart/templates chart/crds
var chartFS embed.FS

// ChartFS returns the Helm chart's files, rooted at the chart directory.
func ChartFS() fs.FS {
	sub, err := fs.Sub(chartFS, "chart")
	if err != nil {
		panic(err) // the embedded tree always has chart/
	}
	return sub
}

// Options configure a rendering.
type Options struct {
	// Namespace is the control plane's namespace; DefaultNamespace when empty.
	Namespace string
	// Version is bowline's version: the default image tag (the chart's appVersion).
	Version string
	// Set overrides values.yaml keys (hub, tag, revision, trustDomain,
	// gatewayServiceType, writeStatus, enableAnalysis), like `helm --set`
	// and `istioctl --set`.
	Set map[string]string
}

// Values returns the chart's values with o.Set applied. An unknown key is
// an error naming the known ones.
func (o Options) Values() (map[string]any, error) {
	data, err := fs.ReadFile(ChartFS(), "values.yaml")
	if err != nil {
		return nil, err
	}
	vals := map[string]any{}
	if err := yaml.Unmarshal(data, &vals); err != nil {
		return nil, fmt.Errorf("values.yaml: %w", err)
	}
	for _, k := range slices.Sorted(maps.Keys(o.Set)) {
		def, ok := vals[k]
		if !ok {
			return nil, fmt.Errorf("--set %s: unknown value (known: %s)", k, strings.Join(slices.Sorted(maps.Keys(vals)), ", "))
		}
		if _, isBool := def.(bool); isBool { // as helm --set reads true and false
			b, err := strconv.ParseBool(o.Set[k])
			if err != nil {
				return nil, fmt.Errorf("--set %s=%s: want true or false", k, o.Set[k])
			}
			vals[k] = b
			continue
		}
		vals[k] = o.Set[k]
	}
	return vals, nil
}

// Templates renders the chart's templates (not the CRDs, not the
// namespace) as multi-document YAML, the objects `helm template` gives for
// the same values.
func Templates(o Options) ([]byte, error) {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	vals, err := o.Values()
	if err != nil {
		return nil, err
	}
	data := map[string]any{
		"Values":  vals,
		"Release": map[string]any{"Namespace": o.Namespace, "Name": "bowline"},
		"Chart":   map[string]any{"Name": "bowline", "AppVersion": o.Version},
	}
	root := template.New("chart").Option("missingkey=error")
	root.Funcs(template.FuncMap{
		"default": func(def, v any) any {
			if v == nil || v == "" {
				return def
			}
			return v
		},
		"nindent": func(n int, s string) string {
			pad := strings.Repeat(" ", n)
			return "\n" + pad + strings.ReplaceAll(s, "\n", "\n"+pad)
		},
		"include": func(name string, dot any) (string, error) {
			var b bytes.Buffer
			err := root.ExecuteTemplate(&b, name, dot)
			return b.String(), err
		},
	})
	files, err := fs.Glob(ChartFS(), "templates/*")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, f := range files {
		src, err := fs.ReadFile(ChartFS(), f)
		if err != nil {
			return nil, err
		}
		if _, err := root.New(f).Parse(string(src)); err != nil {
			return nil, fmt.Errorf("template %s: %w", f, err)
		}
		if !strings.HasPrefix(path.Base(f), "_") {
			names = append(names, f)
		}
	}
	var out bytes.Buffer
	for _, name := range names {
		var b bytes.Buffer
		if err := root.ExecuteTemplate(&b, name, data); err != nil {
			return nil, fmt.Errorf("render %s: %w", name, err)
		}
		fmt.Fprintf(&out, "---\n# Source: bowline/%s\n", name)
		out.Write(bytes.TrimLeft(b.Bytes(), "\n"))
		if !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
			out.WriteByte('\n')
		}
	}
	return out.Bytes(), nil
}

// Namespace returns the control plane's Namespace object.
func Namespace(name string) []byte {
	return []byte("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + name + "\n  labels:\n    app.kubernetes.io/part-of: bowline\n")
}

// Generate returns everything `bowline install` applies, in apply order,
// as one YAML stream: the namespace, Istio's CRDs, then the chart's objects.
func Generate(o Options) ([]byte, error) {
	tmpl, err := Templates(o)
	if err != nil {
		return nil, err
	}
	ns := o.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	var b bytes.Buffer
	b.Write(Namespace(ns))
	b.WriteString("---\n")
	b.Write(CRDs())
	if !bytes.HasSuffix(b.Bytes(), []byte("\n")) {
		b.WriteByte('\n')
	}
	b.Write(tmpl)
	return b.Bytes(), nil
}

// Objects decodes Generate's output.
func Objects(o Options) ([]*unstructured.Unstructured, error) {
	data, err := Generate(o)
	if err != nil {
		return nil, err
	}
	return Decode(data)
}

package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Skipped records a document that was read but is not Istio configuration
// (a Deployment in the same file, say). It is a note, not an error.
type Skipped struct {
	Source     Source `json:"-"`
	File       string `json:"file"`
	Line       int    `json:"line"`
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name,omitempty"`
}

func (s Skipped) String() string {
	return fmt.Sprintf("%s:%d: skipped %s %s %q: not a configuration kind Bowline reads", s.File, s.Line, s.APIVersion, s.Kind, s.Name)
}

// Result is what loading produced: the objects that decoded, the problems of
// those that did not, and the documents skipped as other kinds.
type Result struct {
	Objects  []*Object
	Problems Problems
	Skipped  []Skipped
}

// Merge appends other to r.
func (r *Result) Merge(other *Result) {
	r.Objects = append(r.Objects, other.Objects...)
	r.Problems = append(r.Problems, other.Problems...)
	r.Skipped = append(r.Skipped, other.Skipped...)
}

// ParseOptions control how documents are read.
type ParseOptions struct {
	// Namespace is used for documents without metadata.namespace; DefaultNamespace if empty.
	Namespace string
	// ForceNamespace makes Namespace override metadata.namespace too (kubectl -n semantics
	// are "default only"; this is off unless a caller asks).
	ForceNamespace bool
	// MeshNamespace is where the mesh ConfigMap `istio` is read from
	// (istiod's own namespace); DefaultMeshNamespace if empty. A ConfigMap
	// `istio` elsewhere is ignored with a warning.
	MeshNamespace string
}

func (o ParseOptions) meshNamespace() string {
	if o.MeshNamespace == "" {
		return DefaultMeshNamespace
	}
	return o.MeshNamespace
}

func (o ParseOptions) namespace() string {
	if o.Namespace == "" {
		return DefaultNamespace
	}
	return o.Namespace
}

// Parse reads every YAML or JSON document in data (named file in messages)
// and decodes the Istio ones. It never panics on any input and never returns
// partial objects: a document with a schema problem yields problems, not an object.
func Parse(file string, data []byte, opts ParseOptions) *Result {
	res := &Result{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for idx := 0; ; idx++ {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			res.Problems = append(res.Problems, Problem{Severity: SeverityError, File: file, Line: yamlErrorLine(err), Message: "invalid YAML: " + yamlErrorText(err)})
			break
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := resolveAlias(doc.Content[0])
		if isNull(root) {
			continue
		}
		parseDocument(res, Source{File: file, Line: root.Line, Index: idx}, root, opts)
	}
	return res
}

var yamlLineRE = regexp.MustCompile(`line (\d+): `)

func yamlErrorLine(err error) int {
	m := yamlLineRE.FindStringSubmatch(err.Error())
	if m == nil {
		return 0
	}
	var n int
	fmt.Sscanf(m[1], "%d", &n)
	return n
}

func yamlErrorText(err error) string {
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

// mapping returns the value nodes of a mapping and the lines of its keys, by key.
func mapping(n *yaml.Node) (map[string]*yaml.Node, map[string]int) {
	vals := map[string]*yaml.Node{}
	keyLines := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		vals[k] = resolveAlias(n.Content[i+1])
		keyLines[k] = n.Content[i].Line
	}
	return vals, keyLines
}

func scalarValue(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode || isNull(n) {
		return ""
	}
	return n.Value
}

// parseDocument decodes one top-level document (or the items of a List).
func parseDocument(res *Result, src Source, root *yaml.Node, opts ParseOptions) {
	docProblem := func(line int, field, format string, args ...any) {
		res.Problems = append(res.Problems, Problem{Severity: SeverityError, File: src.File, Line: line, Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if root.Kind != yaml.MappingNode {
		docProblem(src.Line, "", "document is a %s, expected an object with apiVersion and kind", nodeKind(root))
		return
	}
	top, keyLines := mapping(root)
	apiVersion, kind := scalarValue(top["apiVersion"]), scalarValue(top["kind"])
	if apiVersion == "" || kind == "" {
		docProblem(src.Line, "", "document has no apiVersion or kind")
		return
	}
	group, version := splitAPIVersion(apiVersion)
	if kind == "List" && group == "" && version == "v1" {
		items := top["items"]
		if items == nil || items.Kind != yaml.SequenceNode {
			if items != nil && !isNull(items) {
				docProblem(keyLines["items"], "items", "expected list, got %s", nodeKind(items))
			}
			return
		}
		for _, it := range items.Content {
			it = resolveAlias(it)
			parseDocument(res, Source{File: src.File, Line: it.Line, Index: src.Index}, it, opts)
		}
		return
	}
	meta := top["metadata"]
	name := ""
	if meta != nil && meta.Kind == yaml.MappingNode {
		mm, _ := mapping(meta)
		name = scalarValue(mm["name"])
	}
	if group == "" && version == "v1" && kind == KindConfigMap && parseConfigMap(res, src, top, keyLines, name, opts) {
		return
	}
	if group == "" && version == "v1" && kind == KindSecret {
		parseSecret(res, src, top, keyLines, opts)
		return
	}
	schema, known, versionOK := LookupSchema(group, version, kind)
	if !known {
		res.Skipped = append(res.Skipped, Skipped{Source: src, File: src.File, Line: src.Line, APIVersion: apiVersion, Kind: kind, Name: name})
		return
	}
	obj := &Object{GVK: GroupVersionKind{Group: group, Version: version, Kind: kind}, Source: src, Lines: LineIndex{}}
	d := &specDecoder{lines: obj.Lines}
	fail := func() {
		for _, fe := range d.errs {
			res.Problems = append(res.Problems, ProblemFor(obj, fe))
		}
	}
	if !versionOK {
		d.errorf("apiVersion", "%s is not served at version %s (served: %s)", kind, version, strings.Join(schema.Versions, ", "))
	}
	for _, k := range sortedKeys(keyLines) {
		obj.Lines[k] = keyLines[k]
		switch k {
		case "apiVersion", "kind", "metadata", "spec", "status":
		default:
			d.errorf(k, "unknown field %q at the top level of %s", k, kind)
		}
	}
	d.metadata(obj, meta, opts)
	if schema.ClusterScoped {
		obj.Meta.Namespace = ""
	}
	spec := top["spec"]
	if spec == nil || isNull(spec) {
		spec = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: src.Line}
	}
	if schema.NewSpec != nil {
		msg := schema.NewSpec()
		d.message("spec", spec, msg.ProtoReflect().Descriptor())
		if len(d.errs) == 0 {
			if err := decodeSpec(spec, msg); err != nil {
				d.errorf("spec", "%s", strings.TrimPrefix(err.Error(), "proto: "))
			}
		}
		obj.Spec = msg
	} else {
		var v any
		if err := spec.Decode(&v); err != nil {
			d.errorf("spec", "%v", err)
		} else if b, err := json.Marshal(v); err != nil {
			d.errorf("spec", "%v", err)
		} else if s, err := schema.DecodeSpec(b); err != nil {
			d.errs = append(d.errs, specErrors(err)...)
		} else {
			obj.Spec = s
		}
		d.recordLines("spec", spec)
		for i, fe := range d.errs {
			d.errs[i].Path = obj.Lines.withIndexes(fe.Path)
		}
	}
	if len(d.errs) > 0 {
		fail()
		return
	}
	res.Objects = append(res.Objects, obj)
}

// specErrors unpacks FieldErrors returned by a non-proto DecodeSpec.
func specErrors(err error) []FieldError {
	var fes FieldErrors
	if errors.As(err, &fes) {
		return fes
	}
	return []FieldError{{Path: "spec", Reason: err.Error()}}
}

// FieldErrors is a list of field errors that is also an error.
type FieldErrors []FieldError

func (fs FieldErrors) Error() string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = f.Error()
	}
	return strings.Join(s, "; ")
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

func splitAPIVersion(av string) (group, version string) {
	if i := strings.LastIndex(av, "/"); i >= 0 {
		return av[:i], av[i+1:]
	}
	return "", av
}

// dns1123 is a Kubernetes DNS-1123 subdomain, the rule for object names.
var dns1123 = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// dns1123Label is a Kubernetes DNS-1123 label, the rule for namespaces.
var dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// metadata decodes and checks metadata into obj.Meta.
func (d *specDecoder) metadata(obj *Object, n *yaml.Node, opts ParseOptions) {
	obj.Meta.Namespace = opts.namespace()
	if n == nil || isNull(n) {
		d.errorf("metadata.name", "required")
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf("metadata", "expected object, got %s", nodeKind(n))
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolveAlias(n.Content[i+1])
		path := "metadata." + k.Value
		d.lines[path] = k.Line
		switch k.Value {
		case "name":
			obj.Meta.Name = d.str(path, v)
		case "namespace":
			if ns := d.str(path, v); ns != "" && !opts.ForceNamespace {
				obj.Meta.Namespace = ns
			}
		case "labels":
			obj.Meta.Labels = d.strMap(path, v)
		case "annotations":
			obj.Meta.Annotations = d.strMap(path, v)
		case "resourceVersion":
			obj.Meta.ResourceVersion = d.str(path, v)
		case "creationTimestamp":
			obj.Meta.CreationTimestamp = scalarValue(v)
		case "generation":
			if v.Kind == yaml.ScalarNode && v.Tag == "!!int" {
				fmt.Sscanf(v.Value, "%d", &obj.Meta.Generation)
			}
		case "uid", "managedFields", "finalizers", "ownerReferences", "generateName", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds":
			// Set by Kubernetes; accepted and ignored, as in a `kubectl get -o yaml` dump.
		default:
			d.errorf(path, "unknown field %q in metadata", k.Value)
		}
	}
	switch {
	case obj.Meta.Name == "":
		d.errorf("metadata.name", "required")
	case len(obj.Meta.Name) > 253 || !dns1123.MatchString(obj.Meta.Name):
		d.errorf("metadata.name", "%q is not a valid name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit", obj.Meta.Name)
	}
	if len(obj.Meta.Namespace) > 63 || !dns1123Label.MatchString(obj.Meta.Namespace) {
		d.errorf("metadata.namespace", "%q is not a valid namespace: lowercase letters, digits and '-', at most 63 characters", obj.Meta.Namespace)
	}
}

func (d *specDecoder) str(path string, n *yaml.Node) string {
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && !isNull(n)) {
		d.errorf(path, "expected string, got %s", nodeKind(n))
		return ""
	}
	return scalarValue(n)
}

func (d *specDecoder) strMap(path string, n *yaml.Node) map[string]string {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(path, "expected object, got %s", nodeKind(n))
		return nil
	}
	out := make(map[string]string, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolveAlias(n.Content[i+1])
		fp := path + "[" + k.Value + "]"
		d.lines[fp] = k.Line
		out[k.Value] = d.str(fp, v)
	}
	return out
}

// Loader reads configuration from paths: files, directories (recursively,
// *.yaml, *.yml, *.json) and "-" for standard input.
type Loader struct {
	Options ParseOptions
	// Stdin is read for the path "-".
	Stdin io.Reader
	// ReadFile reads files; os.ReadFile when nil.
	ReadFile func(name string) ([]byte, error)
}

// IsConfigFile reports whether a directory walk reads name.
func IsConfigFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// Load reads every path. A path that cannot be read is an error; problems in
// the documents are in the Result.
func (l *Loader) Load(paths ...string) (*Result, error) {
	res := &Result{}
	readFile := l.ReadFile
	if readFile == nil {
		readFile = os.ReadFile
	}
	for _, p := range paths {
		if p == "-" {
			if l.Stdin == nil {
				return nil, errors.New("read stdin: no standard input")
			}
			data, err := io.ReadAll(l.Stdin)
			if err != nil {
				return nil, fmt.Errorf("read stdin: %w", err)
			}
			res.Merge(Parse("<stdin>", data, l.Options))
			continue
		}
		files, err := configFiles(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			data, err := readFile(f)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", f, err)
			}
			res.Merge(Parse(f, data, l.Options))
		}
	}
	return res, nil
}

// configFiles expands p: a file is itself, a directory every config file under it, in lexical order.
func configFiles(p string) ([]string, error) {
	info, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if !info.IsDir() {
		return []string{p}, nil
	}
	var files []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != p && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if IsConfigFile(d.Name()) && !strings.HasPrefix(d.Name(), ".") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return files, nil
}

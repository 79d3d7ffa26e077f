package config

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// DefaultNamespace is used for documents without metadata.namespace, as kubectl does.
const DefaultNamespace = "default"

// GroupVersionKind identifies a document's type as written in apiVersion/kind.
type GroupVersionKind struct {
	Group   string
	Version string
	Kind    string
}

// APIVersion returns "group/version".
func (g GroupVersionKind) APIVersion() string {
	if g.Group == "" {
		return g.Version
	}
	return g.Group + "/" + g.Version
}

func (g GroupVersionKind) String() string { return g.APIVersion() + ", Kind=" + g.Kind }

// Source says where a document came from.
type Source struct {
	// File is the path as given by the user, or "-" / "<stdin>" for standard input.
	File string
	// Line is the 1-based line of the document's first line in File.
	Line int
	// Index is the 0-based position of the document in File (multi-document YAML).
	Index int
}

func (s Source) String() string {
	if s.File == "" {
		return fmt.Sprintf("<unknown>:%d", s.Line)
	}
	return fmt.Sprintf("%s:%d", s.File, s.Line)
}

// Meta is the subset of Kubernetes object metadata Bowline uses.
type Meta struct {
	Name              string
	Namespace         string
	Labels            map[string]string
	Annotations       map[string]string
	ResourceVersion   string
	Generation        int64
	CreationTimestamp string
}

// Object is one decoded Istio (or Bowline) resource. Spec holds the istio.io/api
// message for the kind (all API versions of a kind share one Go type, as in
// istio.io/api where v1 and v1beta1 alias v1alpha3). Objects are immutable
// once loaded: code that needs a change makes a copy.
type Object struct {
	GVK  GroupVersionKind
	Meta Meta
	// Spec is the typed spec: for Istio kinds the istio.io/api message
	// (e.g. *networkingv1alpha3.VirtualService); for Bowline's own kinds a Go
	// struct of this module.
	Spec any
	// Source is where the document started.
	Source Source
	// Lines maps field paths ("spec.http[0].route[1].weight") to their
	// 1-based line in Source.File. It may be nil for objects not read from text.
	Lines LineIndex
}

// Key identifies an object within a kind.
func (o *Object) Key() Key {
	return Key{Group: o.GVK.Group, Kind: o.GVK.Kind, Namespace: o.Meta.Namespace, Name: o.Meta.Name}
}

// Ref returns "Kind namespace/name", the form used in every message.
func (o *Object) Ref() string { return o.Key().String() }

// Key identifies an object: group, kind, namespace and name. The group
// tells Istio's Gateway from the Gateway API's; it is not printed.
type Key struct {
	Group     string
	Kind      string
	Namespace string
	Name      string
}

func (k Key) String() string {
	if k.Namespace == "" { // cluster-scoped
		return k.Kind + " " + k.Name
	}
	return k.Kind + " " + k.Namespace + "/" + k.Name
}

// LineIndex maps a field path to the 1-based line where it appears.
type LineIndex map[string]int

// Line returns the line of path, or of its nearest ancestor that has one,
// falling back to def.
func (l LineIndex) Line(path string, def int) int {
	for p := path; p != ""; p = parentPath(p) {
		if n, ok := l[p]; ok {
			return n
		}
	}
	return def
}

var listIndexRE = regexp.MustCompile(`\[[0-9]+\]`)

// withIndexes returns path as written when it is known, else the first
// known path (by line) that is path with list indexes added: decoders
// that name a field by its struct path ("spec.rules.backendRefs.port")
// are located at the element the user wrote.
func (l LineIndex) withIndexes(path string) string {
	if _, ok := l[path]; ok || strings.Contains(path, "[") {
		return path
	}
	best, bestLine := path, 0
	for p, line := range l {
		if (bestLine == 0 || line < bestLine) && listIndexRE.ReplaceAllString(p, "") == path {
			best, bestLine = p, line
		}
	}
	return best
}

// parentPath strips the last segment of a field path:
// "spec.http[0].route" -> "spec.http[0]" -> "spec.http" -> "spec" -> "".
func parentPath(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		switch p[i] {
		case '.':
			return p[:i]
		case '[':
			return p[:i]
		}
	}
	return ""
}

// SortObjects orders objects by kind, namespace, name, then source, for
// deterministic output.
func SortObjects(objs []*Object) {
	sort.SliceStable(objs, func(i, j int) bool {
		a, b := objs[i], objs[j]
		if a.GVK.Kind != b.GVK.Kind {
			return a.GVK.Kind < b.GVK.Kind
		}
		if a.GVK.Group != b.GVK.Group {
			return a.GVK.Group > b.GVK.Group // networking.istio.io before gateway.networking.k8s.io
		}
		if a.Meta.Namespace != b.Meta.Namespace {
			return a.Meta.Namespace < b.Meta.Namespace
		}
		if a.Meta.Name != b.Meta.Name {
			return a.Meta.Name < b.Meta.Name
		}
		if a.Source.File != b.Source.File {
			return a.Source.File < b.Source.File
		}
		return a.Source.Line < b.Source.Line
	})
}

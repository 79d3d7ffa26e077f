package analysis

import (
	"sort"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/config/envoypatch"
)

// DefaultDomain is the DNS suffix short host names are completed with:
// "reviews" in namespace "default" is "reviews.default.svc.cluster.local".
const DefaultDomain = "cluster.local"

// DefaultRootNamespace holds mesh-wide policy (a PeerAuthentication there
// without a selector applies to the whole mesh), as istio-system does in Istio.
const DefaultRootNamespace = "istio-system"

// Input is what analysis runs over: the result of loading the user's files.
type Input struct {
	// Objects are the decoded resources.
	Objects []*config.Object
	// Problems are the loader's problems (documents that did not decode).
	Problems config.Problems
	// Skipped are documents of other kinds; core/v1 Services among them are
	// read from Sources as registry entries.
	Skipped []config.Skipped
	// Sources holds the bytes of each file read, by the name in Source.File,
	// so skipped Kubernetes Services can be read. May be nil.
	Sources map[string][]byte
	// Services are services a live registry holds besides the input's own
	// (a cluster's Services, as Istio's in-cluster analysis reads them).
	Services []Service
}

// Service is a service of a live registry, for the destination checks.
type Service struct {
	// Host is the complete host name (reviews.bookinfo.svc.cluster.local).
	Host string
	// Namespace is the service's namespace.
	Namespace string
	// Ports are its port numbers.
	Ports []uint32
	// ExportTo limits visibility ("." / "*" / namespaces; empty means "*").
	ExportTo []string
}

// Options tune the analysis.
type Options struct {
	// Domain completes short host names; DefaultDomain if empty.
	Domain string
	// RootNamespace is where mesh-wide policy lives; DefaultRootNamespace if empty.
	RootNamespace string
	// Namespace is the namespace of skipped documents (Kubernetes Services)
	// without metadata.namespace, as given to the loader; config.DefaultNamespace if empty.
	Namespace string
	// NoCA analyzes for a mesh without a CA: configuration asking for mTLS
	// (ISTIO_MUTUAL, STRICT) is reported (BWL0001).
	NoCA bool
	// ProxySupports says whether Bowline's proxy runs an Envoy extension of
	// kind, named name, with config type typeURL; EnvoyFilter patches adding
	// others are reported (BWL0003). Nil checks nothing.
	ProxySupports func(kind envoypatch.Kind, name, typeURL string) bool
}

func (o Options) namespace() string {
	if o.Namespace == "" {
		return config.DefaultNamespace
	}
	return o.Namespace
}

func (o Options) domain() string {
	if o.Domain == "" {
		return DefaultDomain
	}
	return o.Domain
}

func (o Options) rootNamespace() string {
	if o.RootNamespace == "" {
		return DefaultRootNamespace
	}
	return o.RootNamespace
}

// Analyzer is one check over the whole input.
type Analyzer interface {
	// Name is "area.Check", as in istioctl analyze -L.
	Name() string
	// Description says what the analyzer checks, in one sentence.
	Description() string
	// Analyze reports its findings through c. It must not modify the objects.
	Analyze(c *Context)
}

// All returns every analyzer, in a fixed order.
func All() []Analyzer {
	return []Analyzer{
		schemaAnalyzer{},
		destinationRuleCACertAnalyzer{},
		conflictingGatewayAnalyzer{},
		gatewaySecretAnalyzer{},
		mtlsAnalyzer{},
		noCAAnalyzer{},
		serviceEntryAddressesAnalyzer{},
		sidecarDefaultSelectorAnalyzer{},
		telemetryDefaultSelectorAnalyzer{},
		conflictingMeshGatewayHostsAnalyzer{},
		destinationHostAnalyzer{},
		destinationRuleSubsetAnalyzer{},
		gatewayReferenceAnalyzer{},
		unreachableRulesAnalyzer{},
		meshProvidersAnalyzer{},
		gatewayAPIStatusAnalyzer{},
		envoyFilterExtensionAnalyzer{},
	}
}

// Context gives analyzers the input, indexed, and collects their messages.
type Context struct {
	in       Input
	opts     Options
	byKind   map[string][]*config.Object
	registry *registry
	msgs     []Message
}

func newContext(in Input, opts Options) *Context {
	c := &Context{in: in, opts: opts, byKind: map[string][]*config.Object{}}
	objs := append([]*config.Object(nil), in.Objects...)
	config.SortObjects(objs)
	for _, o := range objs {
		k := o.GVK.Kind
		if o.IsGatewayAPI() { // its Gateway is not Istio's
			k = config.GroupGatewayAPI + "/" + k
		}
		c.byKind[k] = append(c.byKind[k], o)
	}
	c.registry = buildRegistry(c)
	return c
}

// Objects returns the objects of kind, ordered by namespace and name.
// Gateway API kinds are named with their group ("gateway.networking.k8s.io/Gateway").
func (c *Context) Objects(kind string) []*config.Object { return c.byKind[kind] }

// Find returns the object of kind named namespace/name, or nil.
func (c *Context) Find(kind, namespace, name string) *config.Object {
	for _, o := range c.byKind[kind] {
		if o.Meta.Namespace == namespace && o.Meta.Name == name {
			return o
		}
	}
	return nil
}

// Report records a message about obj, located at the field path (rooted at
// the document, "spec.http[0].route[0].destination.host"); the nearest
// ancestor with a known line is used when path itself has none.
func (c *Context) Report(t *MessageType, obj *config.Object, path string, args ...any) {
	c.msgs = append(c.msgs, Message{
		Type:      t,
		Kind:      obj.GVK.Kind,
		Namespace: obj.Meta.Namespace,
		Name:      obj.Meta.Name,
		File:      obj.Source.File,
		Line:      obj.Lines.Line(path, obj.Source.Line),
		Args:      args,
	})
}

func (c *Context) add(m Message) { c.msgs = append(c.msgs, m) }

// Analyze runs analyzers (All when nil) over in and returns their messages,
// deduplicated and ordered by file, line, code and text.
func Analyze(in Input, opts Options, analyzers ...Analyzer) []Message {
	if len(analyzers) == 0 {
		analyzers = All()
	}
	c := newContext(in, opts)
	for _, a := range analyzers {
		a.Analyze(c)
	}
	return sortDedupe(c.msgs)
}

func sortDedupe(ms []Message) []Message {
	sort.SliceStable(ms, func(i, j int) bool {
		a, b := ms[i], ms[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Type.Code != b.Type.Code {
			return a.Type.Code < b.Type.Code
		}
		return a.String() < b.String()
	})
	var out []Message
	for _, m := range ms {
		if len(out) > 0 && m.String() == out[len(out)-1].String() {
			continue
		}
		out = append(out, m)
	}
	return out
}

// Filter keeps the messages at or above min.
func Filter(ms []Message, min Level) []Message {
	var out []Message
	for _, m := range ms {
		if m.Type.Level >= min {
			out = append(out, m)
		}
	}
	return out
}

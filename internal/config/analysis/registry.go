package analysis

import (
	"bytes"
	"errors"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/config"
)

// service is one host the files define: a ServiceEntry host, a Kubernetes
// Service or a Bowline Workload.
type service struct {
	host  string   // complete host name, possibly a wildcard
	scope string   // namespace that sees it, or "*"
	ports []uint32 // service ports, when known
	// portsKnown is false for sources that do not declare ports.
	portsKnown bool
	namespace  string
	external   bool // a MESH_EXTERNAL ServiceEntry host
}

// registry is the set of services the analysed files define. Istio's
// analyzers read the live cluster's Services; from files alone the registry
// holds only what the files declare.
type registry struct {
	domain   string
	services []*service
}

// kubernetesExportTo is the annotation that limits a Service's visibility.
const kubernetesExportTo = "networking.istio.io/exportTo"

func buildRegistry(c *Context) *registry {
	r := &registry{domain: c.opts.domain()}
	for _, o := range c.Objects(config.KindServiceEntry) {
		se, ok := o.Spec.(*networking.ServiceEntry)
		if !ok {
			continue
		}
		var ports []uint32
		for _, p := range se.GetPorts() {
			ports = append(ports, p.GetNumber())
		}
		for _, h := range se.GetHosts() {
			for _, scope := range exportScopes(se.GetExportTo(), o.Meta.Namespace) {
				r.services = append(r.services, &service{
					host: fqdn(h, o.Meta.Namespace, r.domain), scope: scope, ports: ports, portsKnown: true,
					namespace: o.Meta.Namespace, external: se.GetLocation() == networking.ServiceEntry_MESH_EXTERNAL,
				})
			}
		}
	}
	for _, o := range c.Objects(config.KindWorkload) {
		r.add(o.Meta.Name, o.Meta.Namespace, nil, false, nil)
	}
	for _, s := range c.in.Services {
		r.add(s.Host, s.Namespace, s.Ports, true, s.ExportTo)
	}
	for _, s := range c.in.Skipped {
		isService := s.Kind == "Service" && s.APIVersion == "v1"
		if !isService && s.Kind != config.KindWorkload {
			continue
		}
		doc := findDocument(c.in.Sources[s.File], s.Line)
		meta := metaOf(doc, c.opts.namespace())
		name := meta.name
		if name == "" {
			name = s.Name
		}
		if name == "" {
			continue
		}
		var exportTo []string
		if v := meta.annotations[kubernetesExportTo]; v != "" {
			for _, e := range strings.Split(v, ",") {
				exportTo = append(exportTo, strings.TrimSpace(e))
			}
		}
		ports, known := servicePorts(doc)
		r.add(name, meta.namespace, ports, isService && known, exportTo)
	}
	return r
}

func (r *registry) add(name, ns string, ports []uint32, portsKnown bool, exportTo []string) {
	for _, scope := range exportScopes(exportTo, ns) {
		r.services = append(r.services, &service{
			host: fqdn(name, ns, r.domain), scope: scope, ports: ports, portsKnown: portsKnown, namespace: ns,
		})
	}
}

// lookup finds the service a destination host in namespace ns refers to:
// an exact host visible to ns first, then a wildcard host that covers it
// (Istio util.GetDestinationHost).
func (r *registry) lookup(host, ns string) *service {
	h := strings.ToLower(fqdn(host, ns, r.domain))
	visible := func(s *service) bool { return s.scope == "*" || s.scope == ns }
	for _, s := range r.services {
		if visible(s) && strings.ToLower(s.host) == h {
			return s
		}
	}
	for _, s := range r.services {
		if !visible(s) || !isWildcard(s.host) {
			continue
		}
		if strings.HasSuffix(strings.TrimPrefix(h, "*"), strings.ToLower(strings.TrimPrefix(s.host, "*"))) {
			return s
		}
	}
	return nil
}

// findDocument returns the mapping node that starts at line in data (a
// top-level document or an item of a List), or nil.
func findDocument(data []byte, line int) *yaml.Node {
	if len(data) == 0 {
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) || err != nil {
			return nil
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode {
			continue
		}
		if root.Line == line {
			return root
		}
		if items := child(root, "items"); items != nil && items.Kind == yaml.SequenceNode {
			for _, it := range items.Content {
				if it.Line == line && it.Kind == yaml.MappingNode {
					return it
				}
			}
		}
	}
}

// child returns the value of key in mapping n, or nil.
func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

type docMeta struct {
	name, namespace string
	annotations     map[string]string
}

func metaOf(doc *yaml.Node, defaultNS string) docMeta {
	m := docMeta{namespace: defaultNS, annotations: map[string]string{}}
	md := child(doc, "metadata")
	if n := child(md, "name"); n != nil && n.Kind == yaml.ScalarNode {
		m.name = n.Value
	}
	if n := child(md, "namespace"); n != nil && n.Kind == yaml.ScalarNode && n.Value != "" {
		m.namespace = n.Value
	}
	if a := child(md, "annotations"); a != nil && a.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(a.Content); i += 2 {
			m.annotations[a.Content[i].Value] = a.Content[i+1].Value
		}
	}
	return m
}

// servicePorts reads spec.ports[].port of a Kubernetes Service.
func servicePorts(doc *yaml.Node) ([]uint32, bool) {
	ps := child(child(doc, "spec"), "ports")
	if ps == nil || ps.Kind != yaml.SequenceNode {
		return nil, doc != nil
	}
	var out []uint32
	for _, p := range ps.Content {
		n := child(p, "port")
		if n == nil {
			continue
		}
		var v uint32
		if err := n.Decode(&v); err == nil {
			out = append(out, v)
		}
	}
	return out, true
}

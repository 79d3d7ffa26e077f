package config

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

// Mesh configuration (Istio's MeshConfig) reaches the store in one of two
// forms, both decoded by ParseMeshConfig into an Object whose Spec is the
// *meshv1alpha1.MeshConfig in force, Istio's defaults applied:
//
//   - the ConfigMap `istio` (data.mesh holds MeshConfig YAML) in the mesh
//     config namespace, Kind KindConfigMap: a document in the config
//     directory, or on Kubernetes the real ConfigMap (a source feeding the
//     store calls ParseMeshConfig with the ConfigMap's data["mesh"], its
//     metadata and MeshConfigField as the field prefix);
//   - a plain MeshConfig YAML file (istiod's --meshConfig, Bowline's
//     --mesh-config), Kind KindMeshConfig, read by DirSource.
const (
	// KindConfigMap is core/v1 ConfigMap; only MeshConfigMapName is read.
	KindConfigMap = "ConfigMap"
	// KindMeshConfig marks a MeshConfig read from a file of its own.
	KindMeshConfig = "MeshConfig"
	// MeshConfigMapName is the ConfigMap istiod reads its MeshConfig from.
	MeshConfigMapName = "istio"
	// MeshConfigField is the path of the MeshConfig YAML in that ConfigMap.
	MeshConfigField = "data.mesh"
	// DefaultMeshNamespace is where the mesh ConfigMap lives (istiod's namespace).
	DefaultMeshNamespace = "istio-system"
	// DefaultTraceSampling is the sampling percentage when neither MeshConfig
	// nor the Telemetry API sets one (istiod's PILOT_TRACE_SAMPLING default).
	DefaultTraceSampling = 1.0
)

// DefaultMeshConfig returns Istio's default MeshConfig (the fields Bowline
// reads take istiod's defaults; the rest are left unset).
func DefaultMeshConfig() *meshv1alpha1.MeshConfig {
	return &meshv1alpha1.MeshConfig{
		EnableTracing:         true,
		AccessLogEncoding:     meshv1alpha1.MeshConfig_TEXT,
		TrustDomain:           "cluster.local",
		EnableAutoMtls:        wrapperspb.Bool(true),
		OutboundTrafficPolicy: &meshv1alpha1.MeshConfig_OutboundTrafficPolicy{Mode: meshv1alpha1.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY},
		InboundTrafficPolicy:  &meshv1alpha1.MeshConfig_InboundTrafficPolicy{Mode: meshv1alpha1.MeshConfig_InboundTrafficPolicy_PASSTHROUGH},
		RootNamespace:         DefaultMeshNamespace,
		ConnectTimeout:        durationpb.New(10e9),
		DefaultProviders:      &meshv1alpha1.MeshConfig_DefaultProviders{},
		EnablePrometheusMerge: wrapperspb.Bool(true),
		DefaultConfig:         &meshv1alpha1.ProxyConfig{},
		ExtensionProviders: []*meshv1alpha1.MeshConfig_ExtensionProvider{
			{Name: "prometheus", Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_Prometheus{Prometheus: &meshv1alpha1.MeshConfig_ExtensionProvider_PrometheusMetricsProvider{}}},
			{Name: "envoy", Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyFileAccessLog{EnvoyFileAccessLog: &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyFileAccessLogProvider{Path: "/dev/stdout"}}},
		},
	}
}

// MeshConfigParse says where a MeshConfig's YAML text comes from.
type MeshConfigParse struct {
	// Kind is KindConfigMap or KindMeshConfig.
	Kind string
	// Meta is the object's metadata (the ConfigMap's; for a file, name
	// MeshConfigMapName in the mesh namespace).
	Meta Meta
	// Source is where the document (ConfigMap) or file starts.
	Source Source
	// Field is the path of the YAML text in the document (MeshConfigField
	// for a ConfigMap, "" for a file).
	Field string
	// FirstLine is the line of Source.File where the text's first line is.
	FirstLine int
	// Lines, when set, receives the lines of the enclosing document.
	Lines LineIndex
}

// ParseMeshConfig decodes MeshConfig YAML text strictly (unknown fields,
// wrong types and unknown enum values are errors with their file line) and
// applies it over Istio's defaults the way istiod does: every field written
// replaces the default, except defaultConfig (merged into the default proxy
// config), extensionProviders (the written ones, then the defaults of other names) and
// trustDomainAliases (united). It returns the object, or nil and the
// problems.
func ParseMeshConfig(p MeshConfigParse, text string) (*Object, Problems) {
	obj := &Object{GVK: GroupVersionKind{Version: "v1", Kind: p.Kind}, Meta: p.Meta, Source: p.Source, Lines: p.Lines}
	if p.Kind == KindMeshConfig {
		obj.GVK = GroupVersionKind{Group: "mesh.istio.io", Version: "v1alpha1", Kind: KindMeshConfig}
	}
	if obj.Lines == nil {
		obj.Lines = LineIndex{}
	}
	fail := func(fes ...FieldError) (*Object, Problems) {
		var ps Problems
		for _, fe := range fes {
			ps = append(ps, ProblemFor(obj, fe))
		}
		return nil, ps
	}
	var root *yaml.Node
	dec := yaml.NewDecoder(strings.NewReader(text))
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
	case err != nil:
		line := yamlErrorLine(err)
		if line > 0 {
			obj.Lines[p.Field] = p.FirstLine + line - 1
		}
		return fail(FieldError{Path: p.Field, Reason: "invalid YAML: " + yamlLineRE.ReplaceAllString(yamlErrorText(err), "")})
	default:
		if len(doc.Content) > 0 {
			root = resolveAlias(doc.Content[0])
		}
	}
	user := &meshv1alpha1.MeshConfig{}
	var written []string
	if root != nil && !isNull(root) {
		inner := LineIndex{}
		d := &specDecoder{lines: inner}
		d.message("", root, user.ProtoReflect().Descriptor())
		for k, l := range inner {
			obj.Lines[joinPath(p.Field, k)] = p.FirstLine + l - 1
		}
		if len(d.errs) == 0 {
			if err := decodeSpec(root, user); err != nil {
				d.errorf("", "%s", strings.TrimPrefix(err.Error(), "proto: "))
			}
		}
		if len(d.errs) > 0 {
			for i := range d.errs {
				d.errs[i].Path = joinPath(p.Field, d.errs[i].Path)
				if d.errs[i].Path == "" {
					d.errs[i].Path = p.Field
				}
			}
			return fail(d.errs...)
		}
		for i := 0; i+1 < len(root.Content); i += 2 {
			written = append(written, root.Content[i].Value)
		}
	}
	mc := applyMeshConfig(DefaultMeshConfig(), user, written)
	if !slices.Contains(written, "rootNamespace") && p.Meta.Namespace != "" {
		mc.RootNamespace = p.Meta.Namespace // istiod: the root namespace defaults to its own
	}
	obj.Spec = mc
	return obj, nil
}

// applyMeshConfig applies the fields of user named in written (YAML keys)
// over def, as istiod's mesh.ApplyMeshConfig does, and returns def.
func applyMeshConfig(def, user *meshv1alpha1.MeshConfig, written []string) *meshv1alpha1.MeshConfig {
	dm, um := def.ProtoReflect(), user.ProtoReflect()
	fields := dm.Descriptor().Fields()
	for _, key := range written {
		fd := fields.ByJSONName(key)
		if fd == nil {
			fd = fields.ByTextName(key)
		}
		if fd == nil {
			continue
		}
		switch fd.Name() {
		case "default_config":
			if user.GetDefaultConfig() != nil {
				proto.Merge(def.DefaultConfig, user.GetDefaultConfig())
			}
		case "extension_providers":
			// The user's providers in their written order (so field paths
			// keep their indices), then the defaults they do not redefine.
			out := slices.Clone(user.GetExtensionProviders())
			for _, dp := range def.ExtensionProviders {
				if !slices.ContainsFunc(out, func(e *meshv1alpha1.MeshConfig_ExtensionProvider) bool { return e.GetName() == dp.GetName() }) {
					out = append(out, dp)
				}
			}
			def.ExtensionProviders = out
		case "trust_domain_aliases":
			all := append(slices.Clone(def.TrustDomainAliases), user.GetTrustDomainAliases()...)
			slices.Sort(all)
			def.TrustDomainAliases = slices.Compact(all)
		default:
			if um.Has(fd) {
				dm.Set(fd, um.Get(fd))
			} else {
				dm.Clear(fd) // written as its zero value (enableTracing: false)
			}
		}
	}
	if def.DefaultProviders == nil {
		def.DefaultProviders = &meshv1alpha1.MeshConfig_DefaultProviders{}
	}
	if def.DefaultConfig == nil {
		def.DefaultConfig = &meshv1alpha1.ProxyConfig{}
	}
	return def
}

// MeshConfigPath returns the document path of a MeshConfig field of obj
// (a ConfigMap's fields sit under data.mesh).
func MeshConfigPath(obj *Object, field string) string {
	if obj.GVK.Kind == KindConfigMap {
		return joinPath(MeshConfigField, field)
	}
	return field
}

// parseConfigMap reads a core/v1 ConfigMap document: the mesh ConfigMap is
// decoded into a MeshConfig object, any other ConfigMap is skipped. The
// ConfigMap must be in opts' mesh namespace, as istiod reads it from its own.
func parseConfigMap(res *Result, src Source, top map[string]*yaml.Node, keyLines map[string]int, name string, opts ParseOptions) bool {
	if name != MeshConfigMapName {
		return false
	}
	obj := &Object{GVK: GroupVersionKind{Version: "v1", Kind: KindConfigMap}, Source: src, Lines: LineIndex{}}
	d := &specDecoder{lines: obj.Lines}
	for _, k := range sortedKeys(keyLines) {
		obj.Lines[k] = keyLines[k]
		switch k {
		case "apiVersion", "kind", "metadata", "data", "binaryData", "immutable":
		default:
			d.errorf(k, "unknown field %q at the top level of ConfigMap", k)
		}
	}
	d.metadata(obj, top["metadata"], opts)
	text, textLine := "", src.Line
	if data := top["data"]; data != nil && !isNull(data) {
		if data.Kind != yaml.MappingNode {
			d.errorf("data", "expected object, got %s", nodeKind(data))
		} else {
			vals, lines := mapping(data)
			for _, k := range sortedKeys(vals) {
				obj.Lines["data."+k] = lines[k]
				v := vals[k]
				if k != "mesh" {
					d.errs = append(d.errs, FieldError{Path: "data." + k, Reason: "ignored: Bowline reads only data.mesh of this ConfigMap", Warning: true})
					continue
				}
				if v.Kind != yaml.ScalarNode || (v.Tag != "!!str" && !isNull(v)) {
					d.errorf(MeshConfigField, "expected MeshConfig YAML as a string (mesh: |), got %s", nodeKind(v))
					continue
				}
				text, textLine = scalarValue(v), v.Line
				if v.Style == yaml.LiteralStyle || v.Style == yaml.FoldedStyle {
					textLine++ // the text starts on the line after "mesh: |"
				}
			}
		}
	}
	if ns := opts.meshNamespace(); obj.Meta.Namespace != ns && obj.Meta.Name != "" {
		d.errs = append(d.errs, FieldError{Path: "metadata.namespace", Warning: true,
			Reason: fmt.Sprintf("ignored: the mesh config is the ConfigMap %s in namespace %s (the root namespace)", MeshConfigMapName, ns)})
		for _, fe := range d.errs {
			res.Problems = append(res.Problems, ProblemFor(obj, fe))
		}
		return true
	}
	var errs bool
	for _, fe := range d.errs {
		res.Problems = append(res.Problems, ProblemFor(obj, fe))
		errs = errs || !fe.Warning
	}
	if errs {
		return true
	}
	mc, problems := ParseMeshConfig(MeshConfigParse{Kind: KindConfigMap, Meta: obj.Meta, Source: src, Field: MeshConfigField, FirstLine: textLine, Lines: obj.Lines}, text)
	res.Problems = append(res.Problems, problems...)
	if mc != nil {
		res.Objects = append(res.Objects, mc)
	}
	return true
}

// ParseMeshConfigFile decodes a plain MeshConfig YAML file (--mesh-config)
// into a KindMeshConfig object named MeshConfigMapName in namespace.
func ParseMeshConfigFile(file string, data []byte, namespace string) (*Object, Problems) {
	if namespace == "" {
		namespace = DefaultMeshNamespace
	}
	return ParseMeshConfig(MeshConfigParse{Kind: KindMeshConfig, Meta: Meta{Name: MeshConfigMapName, Namespace: namespace},
		Source: Source{File: file, Line: 1}, FirstLine: 1}, string(data))
}

// MeshConfigOf returns the MeshConfig of a mesh config object, or nil for other objects.
func MeshConfigOf(o *Object) *meshv1alpha1.MeshConfig {
	if o.GVK.Kind != KindConfigMap && o.GVK.Kind != KindMeshConfig {
		return nil
	}
	mc, _ := o.Spec.(*meshv1alpha1.MeshConfig)
	return mc
}

package config

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// specDecoder walks a YAML node tree against a protobuf message descriptor,
// recording the line of every field and reporting schema problems (unknown
// fields, wrong types, unknown enum values, several members of one oneof) with
// their field paths. It checks what protojson would otherwise reject with a
// message that names no field.
type specDecoder struct {
	lines LineIndex
	errs  []FieldError
	depth int
}

// maxDepth bounds nesting, so recursive YAML aliases cannot loop forever.
const maxDepth = 64

// enter descends one level; it reports false (and an error) past maxDepth.
func (d *specDecoder) enter(path string) bool {
	d.depth++
	if d.depth > maxDepth {
		d.errorf(path, "nested too deeply (recursive alias?)")
		return false
	}
	return true
}

func (d *specDecoder) errorf(path, format string, args ...any) {
	d.errs = append(d.errs, FieldError{Path: path, Reason: fmt.Sprintf(format, args...)})
}

// nodeKind names a YAML node's type the way users think of it.
func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "object"
	case yaml.SequenceNode:
		return "list"
	case yaml.AliasNode:
		return "alias"
	}
	switch n.Tag {
	case "!!str":
		return "string"
	case "!!int":
		return "integer"
	case "!!float":
		return "number"
	case "!!bool":
		return "boolean"
	case "!!null":
		return "null"
	}
	return "value"
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// message checks a mapping node against md.
func (d *specDecoder) message(path string, n *yaml.Node, md protoreflect.MessageDescriptor) {
	defer func() { d.depth-- }()
	if !d.enter(path) {
		return
	}
	n = resolveAlias(n)
	if isNull(n) {
		return
	}
	if wkt := wellKnown(md.FullName()); wkt != nil {
		wkt(d, path, n)
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(path, "expected object, got %s", nodeKind(n))
		return
	}
	fields := md.Fields()
	oneofSeen := map[protoreflect.FullName]string{}
	seen := map[protoreflect.Name]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := k.Value
		fp := joinPath(path, name)
		d.lines[fp] = k.Line
		fd := fields.ByJSONName(name)
		if fd == nil {
			fd = fields.ByTextName(name)
		}
		if fd == nil {
			d.errorf(fp, "unknown field %q in %s", name, md.Name())
			continue
		}
		if seen[fd.Name()] {
			d.errorf(fp, "field %q is set more than once", name)
			continue
		}
		seen[fd.Name()] = true
		if isNull(resolveAlias(v)) {
			continue
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if other, ok := oneofSeen[od.FullName()]; ok {
				d.errorf(fp, "only one of %q and %q may be set", other, name)
				continue
			}
			oneofSeen[od.FullName()] = name
		}
		d.field(fp, v, fd)
	}
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func (d *specDecoder) field(path string, n *yaml.Node, fd protoreflect.FieldDescriptor) {
	n = resolveAlias(n)
	switch {
	case fd.IsMap():
		if n.Kind != yaml.MappingNode {
			d.errorf(path, "expected object (map), got %s", nodeKind(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			fp := path + "[" + k.Value + "]"
			d.lines[fp] = k.Line
			d.single(fp, resolveAlias(v), fd.MapValue())
		}
	case fd.IsList():
		if n.Kind != yaml.SequenceNode {
			d.errorf(path, "expected list, got %s", nodeKind(n))
			return
		}
		for i, e := range n.Content {
			fp := fmt.Sprintf("%s[%d]", path, i)
			d.lines[fp] = e.Line
			d.single(fp, resolveAlias(e), fd)
		}
	default:
		d.single(path, n, fd)
	}
}

// single checks one value of fd's type (a list element, a map value or a plain field).
func (d *specDecoder) single(path string, n *yaml.Node, fd protoreflect.FieldDescriptor) {
	if isNull(n) {
		return
	}
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		d.message(path, n, fd.Message())
		return
	}
	d.scalar(path, n, fd.Kind(), fd.Enum())
}

// scalar checks a scalar value of the given kind (ed is set for enums).
func (d *specDecoder) scalar(path string, n *yaml.Node, kind protoreflect.Kind, ed protoreflect.EnumDescriptor) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(path, "expected %s, got %s", scalarName(kind, ed), nodeKind(n))
		return
	}
	switch kind {
	case protoreflect.StringKind, protoreflect.BytesKind:
		if n.Tag != "!!str" {
			d.errorf(path, "expected string, got %s %s (quote it)", nodeKind(n), n.Value)
		}
	case protoreflect.BoolKind:
		if n.Tag != "!!bool" {
			d.errorf(path, "expected boolean, got %s %q", nodeKind(n), n.Value)
		}
	case protoreflect.EnumKind:
		if n.Tag == "!!int" {
			v, err := strconv.ParseInt(n.Value, 0, 32)
			if err != nil || ed.Values().ByNumber(protoreflect.EnumNumber(v)) == nil {
				d.errorf(path, "unknown value %s for %s", n.Value, ed.Name())
			}
			return
		}
		if ed.Values().ByName(protoreflect.Name(n.Value)) == nil {
			d.errorf(path, "unknown value %q for %s (allowed: %s)", n.Value, ed.Name(), enumNames(ed))
		}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		d.integer(path, n, math.MinInt32, math.MaxInt32)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		d.integer(path, n, 0, math.MaxUint32)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		d.integer(path, n, math.MinInt64, math.MaxInt64)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		d.integer(path, n, 0, math.MaxInt64)
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		if n.Tag != "!!int" && n.Tag != "!!float" {
			d.errorf(path, "expected number, got %s %q", nodeKind(n), n.Value)
		}
	}
}

func (d *specDecoder) integer(path string, n *yaml.Node, lo, hi float64) {
	if n.Tag != "!!int" && !(n.Tag == "!!str" && isIntString(n.Value)) {
		d.errorf(path, "expected integer, got %s %q", nodeKind(n), n.Value)
		return
	}
	v, err := strconv.ParseFloat(n.Value, 64)
	if err != nil {
		if i, err2 := strconv.ParseInt(n.Value, 0, 64); err2 == nil {
			v = float64(i)
		} else {
			d.errorf(path, "expected integer, got %q", n.Value)
			return
		}
	}
	if v < lo || v > hi {
		d.errorf(path, "integer %s out of range", n.Value)
	}
}

func isIntString(s string) bool {
	_, err := strconv.ParseInt(s, 10, 64)
	return err == nil
}

func scalarName(kind protoreflect.Kind, ed protoreflect.EnumDescriptor) string {
	switch kind {
	case protoreflect.StringKind, protoreflect.BytesKind:
		return "string"
	case protoreflect.BoolKind:
		return "boolean"
	case protoreflect.EnumKind:
		return "one of " + enumNames(ed)
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return "number"
	}
	return "integer"
}

func enumNames(ed protoreflect.EnumDescriptor) string {
	vals := ed.Values()
	names := make([]string, 0, vals.Len())
	for i := 0; i < vals.Len(); i++ {
		names = append(names, string(vals.Get(i).Name()))
	}
	return strings.Join(names, ", ")
}

// wellKnown returns the checker for protobuf well-known types, which have a
// special JSON form, or nil.
func wellKnown(name protoreflect.FullName) func(d *specDecoder, path string, n *yaml.Node) {
	switch name {
	case "google.protobuf.Duration":
		return func(d *specDecoder, path string, n *yaml.Node) {
			if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
				d.errorf(path, "expected duration string like \"1.5s\", got %s", nodeKind(n))
				return
			}
			if _, err := ParseProtoDuration(n.Value); err != nil {
				d.errorf(path, "invalid duration %q: %v", n.Value, err)
			}
		}
	case "google.protobuf.Timestamp":
		return func(d *specDecoder, path string, n *yaml.Node) {
			if n.Kind != yaml.ScalarNode {
				d.errorf(path, "expected RFC 3339 timestamp, got %s", nodeKind(n))
				return
			}
			if _, err := time.Parse(time.RFC3339Nano, n.Value); err != nil {
				d.errorf(path, "invalid timestamp %q", n.Value)
			}
		}
	case "google.protobuf.Struct":
		return func(d *specDecoder, path string, n *yaml.Node) {
			if n.Kind != yaml.MappingNode {
				d.errorf(path, "expected object, got %s", nodeKind(n))
			}
			d.recordLines(path, n)
		}
	case "google.protobuf.Value", "google.protobuf.ListValue", "google.protobuf.Any":
		return func(d *specDecoder, path string, n *yaml.Node) { d.recordLines(path, n) }
	case "google.protobuf.BoolValue":
		return scalarWrapper(protoreflect.BoolKind)
	case "google.protobuf.StringValue", "google.protobuf.BytesValue":
		return scalarWrapper(protoreflect.StringKind)
	case "google.protobuf.UInt32Value":
		return scalarWrapper(protoreflect.Uint32Kind)
	case "google.protobuf.Int32Value":
		return scalarWrapper(protoreflect.Int32Kind)
	case "google.protobuf.UInt64Value":
		return scalarWrapper(protoreflect.Uint64Kind)
	case "google.protobuf.Int64Value":
		return scalarWrapper(protoreflect.Int64Kind)
	case "google.protobuf.DoubleValue", "google.protobuf.FloatValue":
		return scalarWrapper(protoreflect.DoubleKind)
	}
	return nil
}

// recordLines indexes the lines of free-form content (Struct, Any) without checking it.
func (d *specDecoder) recordLines(path string, n *yaml.Node) {
	defer func() { d.depth-- }()
	if !d.enter(path) {
		return
	}
	n = resolveAlias(n)
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			fp := joinPath(path, n.Content[i].Value)
			d.lines[fp] = n.Content[i].Line
			d.recordLines(fp, n.Content[i+1])
		}
	case yaml.SequenceNode:
		for i, e := range n.Content {
			fp := fmt.Sprintf("%s[%d]", path, i)
			d.lines[fp] = e.Line
			d.recordLines(fp, e)
		}
	}
}

func scalarWrapper(kind protoreflect.Kind) func(d *specDecoder, path string, n *yaml.Node) {
	return func(d *specDecoder, path string, n *yaml.Node) {
		if n = resolveAlias(n); isNull(n) {
			return
		}
		d.scalar(path, n, kind, nil)
	}
}

// ParseProtoDuration parses the JSON form of google.protobuf.Duration
// ("1s", "0.5s", "100ms" is not valid protobuf JSON but Istio's CRDs accept
// Go duration syntax, so both are accepted).
func ParseProtoDuration(s string) (time.Duration, error) {
	if strings.HasSuffix(s, "s") && !strings.ContainsAny(strings.TrimSuffix(s, "s"), "hmuµn") {
		f, err := strconv.ParseFloat(strings.TrimSuffix(s, "s"), 64)
		if err != nil {
			return 0, fmt.Errorf("not a number of seconds")
		}
		if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 315576000000 {
			return 0, fmt.Errorf("out of range")
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("use a duration like \"5s\" or \"100ms\"")
	}
	return d, nil
}

// decodeSpec turns a checked YAML node into the proto message, normalising
// durations to protobuf JSON form first.
func decodeSpec(n *yaml.Node, msg proto.Message) error {
	var v any
	if err := n.Decode(&v); err != nil {
		return err
	}
	v = normalizeDurations(stringKeys(v), msg.ProtoReflect().Descriptor())
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return protojson.UnmarshalOptions{}.Unmarshal(b, msg)
}

// stringKeys turns maps with non-string keys (YAML `8080: {...}` under a
// map<uint32, ...> field such as portLevelMtls) into string-keyed maps, the
// form protojson reads.
func stringKeys(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = stringKeys(e)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[fmt.Sprint(k)] = stringKeys(e)
		}
		return m
	case []any:
		for i, e := range t {
			t[i] = stringKeys(e)
		}
		return t
	}
	return v
}

// normalizeDurations rewrites Go-style durations ("100ms") into protobuf
// JSON form ("0.100s") wherever the descriptor says a Duration goes.
func normalizeDurations(v any, md protoreflect.MessageDescriptor) any {
	if md == nil {
		return v
	}
	if md.FullName() == "google.protobuf.Duration" {
		if s, ok := v.(string); ok {
			if d, err := ParseProtoDuration(s); err == nil {
				return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
			}
		}
		return v
	}
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	fields := md.Fields()
	for k, val := range m {
		fd := fields.ByJSONName(k)
		if fd == nil {
			fd = fields.ByTextName(k)
		}
		if fd == nil {
			continue
		}
		var sub protoreflect.MessageDescriptor
		switch {
		case fd.IsMap():
			sub = fd.MapValue().Message()
			if mm, ok := val.(map[string]any); ok && sub != nil {
				for mk, mv := range mm {
					mm[mk] = normalizeDurations(mv, sub)
				}
			}
			continue
		case fd.Message() != nil:
			sub = fd.Message()
		default:
			continue
		}
		if list, ok := val.([]any); ok && fd.IsList() {
			for i := range list {
				list[i] = normalizeDurations(list[i], sub)
			}
			continue
		}
		m[k] = normalizeDurations(val, sub)
	}
	return m
}

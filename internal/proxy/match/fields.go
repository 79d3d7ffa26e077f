package match

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// OnlyFields returns an error naming the first populated field of m that is
// not in allowed ("field a.b.c: unsupported"). path is the field path of m
// inside its resource; "" for the resource itself. A field Envoy would act on
// but Bowline does not implement is an error, never silently dropped.
func OnlyFields(m proto.Message, path string, allowed ...string) error {
	var bad string
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if name := string(fd.Name()); !slices.Contains(allowed, name) {
			bad = name
			return false
		}
		return true
	})
	if bad != "" {
		return fmt.Errorf("field %s: unsupported", JoinPath(path, bad))
	}
	return nil
}

// JoinPath appends field to a field path.
func JoinPath(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

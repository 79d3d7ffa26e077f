package envoypatch

import (
	"encoding/json"
	"fmt"
	"regexp"

	udpatypev1 "github.com/cncf/xds/go/udpa/type/v1"
	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	networking "istio.io/api/networking/v1alpha3"
)

// NewMessage returns an empty message of the type a patch value has for
// applyTo, or an error for the applyTo values Bowline does not patch
// (EXTENSION_CONFIG, BOOTSTRAP, ...).
func NewMessage(applyTo networking.EnvoyFilter_ApplyTo) (proto.Message, error) {
	switch applyTo {
	case networking.EnvoyFilter_LISTENER:
		return &listenerv3.Listener{}, nil
	case networking.EnvoyFilter_LISTENER_FILTER:
		return &listenerv3.ListenerFilter{}, nil
	case networking.EnvoyFilter_FILTER_CHAIN:
		return &listenerv3.FilterChain{}, nil
	case networking.EnvoyFilter_NETWORK_FILTER:
		return &listenerv3.Filter{}, nil
	case networking.EnvoyFilter_HTTP_FILTER:
		return &hcmv3.HttpFilter{}, nil
	case networking.EnvoyFilter_ROUTE_CONFIGURATION:
		return &routev3.RouteConfiguration{}, nil
	case networking.EnvoyFilter_VIRTUAL_HOST:
		return &routev3.VirtualHost{}, nil
	case networking.EnvoyFilter_HTTP_ROUTE:
		return &routev3.Route{}, nil
	case networking.EnvoyFilter_CLUSTER:
		return &clusterv3.Cluster{}, nil
	}
	return nil, fmt.Errorf("applyTo %s is not supported by Bowline", applyTo)
}

// Value converts a patch value to the Envoy message of applyTo. Field names
// may be Envoy's (snake_case) or their JSON form; unknown fields and types
// are errors. TypedStructs naming a known type become that type. A nil value
// (REMOVE) gives a nil message.
func Value(applyTo networking.EnvoyFilter_ApplyTo, v *structpb.Struct) (proto.Message, error) {
	m, err := NewMessage(applyTo)
	if err != nil || v == nil {
		return nil, err
	}
	if err := fromStruct(v, m); err != nil {
		return nil, err
	}
	if err := resolveMessage(m.ProtoReflect()); err != nil {
		return nil, err
	}
	return m, nil
}

// jsonPosition is protojson's position prefix, meaningless for a value
// that is not the user's text.
var jsonPosition = regexp.MustCompile(`^proto:[\s\x{a0}]*\(line \d+:\d+\):[\s\x{a0}]*`)

func fromStruct(v *structpb.Struct, m proto.Message) error {
	b, err := json.Marshal(v.AsMap())
	if err != nil {
		return fmt.Errorf("encode value: %w", err)
	}
	if err := protojson.Unmarshal(b, m); err != nil {
		return fmt.Errorf("not a valid %s: %s", m.ProtoReflect().Descriptor().FullName(), jsonPosition.ReplaceAllString(err.Error(), ""))
	}
	return nil
}

// resolveMessage replaces, at any depth, the TypedStructs of m whose type is
// known by that type.
func resolveMessage(m protoreflect.Message) error {
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = resolveField(l.Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				err = resolveField(mv.Message())
				return err == nil
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			err = resolveField(v.Message())
		}
		return err == nil
	})
	return err
}

func resolveField(m protoreflect.Message) error {
	if a, ok := m.Interface().(*anypb.Any); ok {
		return resolveAny(a)
	}
	return resolveMessage(m)
}

// resolveAny rewrites a in place: a TypedStruct of a known type becomes that
// type; any other known type has its own Anys resolved. Unknown types stay.
func resolveAny(a *anypb.Any) error {
	inner, err := a.UnmarshalNew()
	if err != nil {
		return nil // a type this control plane does not know: sent as it is
	}
	url, st := typedStruct(inner)
	if url != "" {
		mt, err := protoregistry.GlobalTypes.FindMessageByURL(url)
		if err != nil {
			return nil // the proxy resolves it or names it in a NACK
		}
		inner = mt.New().Interface()
		if st != nil {
			if err := fromStruct(st, inner); err != nil {
				return fmt.Errorf("TypedStruct %s: %w", url, err)
			}
		}
	}
	if err := resolveMessage(inner.ProtoReflect()); err != nil {
		return err
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(inner)
	if err != nil {
		return fmt.Errorf("encode %s: %w", inner.ProtoReflect().Descriptor().FullName(), err)
	}
	a.TypeUrl, a.Value = "type.googleapis.com/"+string(inner.ProtoReflect().Descriptor().FullName()), b
	return nil
}

// typedStruct returns the type URL and value of m if m is a TypedStruct
// (udpa.type.v1 or xds.type.v3), else "".
func typedStruct(m proto.Message) (string, *structpb.Struct) {
	switch ts := m.(type) {
	case *udpatypev1.TypedStruct:
		return ts.GetTypeUrl(), ts.GetValue()
	case *xdstypev3.TypedStruct:
		return ts.GetTypeUrl(), ts.GetValue()
	}
	return "", nil
}

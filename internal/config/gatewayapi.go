package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	kjson "sigs.k8s.io/json"
)

// GroupGatewayAPI is the Kubernetes Gateway API group. Its kinds are read
// into the types of sigs.k8s.io/gateway-api (apis/v1; the v1beta1 and
// v1alpha2 versions of a kind share the v1 Go type there).
const GroupGatewayAPI = "gateway.networking.k8s.io"

// Gateway API kind names (Gateway is KindGateway in GroupGatewayAPI).
const (
	KindGatewayClass   = "GatewayClass"
	KindHTTPRoute      = "HTTPRoute"
	KindGRPCRoute      = "GRPCRoute"
	KindTCPRoute       = "TCPRoute"
	KindTLSRoute       = "TLSRoute"
	KindReferenceGrant = "ReferenceGrant"
)

// gatewayAPISchemas are the Gateway API kinds at the versions the v1.6
// standard channel serves.
var gatewayAPISchemas = []Schema{
	{Group: GroupGatewayAPI, Kind: KindGatewayClass, Versions: []string{"v1", "v1beta1"}, ClusterScoped: true, DecodeSpec: decodeGatewayAPI[gwv1.GatewayClassSpec]},
	{Group: GroupGatewayAPI, Kind: KindGateway, Versions: []string{"v1", "v1beta1"}, DecodeSpec: decodeGatewayAPI[gwv1.GatewaySpec]},
	{Group: GroupGatewayAPI, Kind: KindHTTPRoute, Versions: []string{"v1", "v1beta1"}, DecodeSpec: decodeGatewayAPI[gwv1.HTTPRouteSpec]},
	{Group: GroupGatewayAPI, Kind: KindGRPCRoute, Versions: []string{"v1"}, DecodeSpec: decodeGatewayAPI[gwv1.GRPCRouteSpec]},
	{Group: GroupGatewayAPI, Kind: KindTCPRoute, Versions: []string{"v1"}, DecodeSpec: decodeGatewayAPI[gwv1.TCPRouteSpec]},
	{Group: GroupGatewayAPI, Kind: KindTLSRoute, Versions: []string{"v1"}, DecodeSpec: decodeGatewayAPI[gwv1.TLSRouteSpec]},
	{Group: GroupGatewayAPI, Kind: KindReferenceGrant, Versions: []string{"v1", "v1beta1"}, DecodeSpec: decodeGatewayAPI[gwv1.ReferenceGrantSpec]},
}

// IsGatewayAPI reports whether o is a Gateway API object.
func (o *Object) IsGatewayAPI() bool { return o.GVK.Group == GroupGatewayAPI }

// decodeGatewayAPI decodes a Gateway API spec strictly: an unknown or
// repeated field is an error naming its path, as the API server's
// strict field validation does.
func decodeGatewayAPI[T any](data []byte) (any, error) {
	spec := new(T)
	strict, err := kjson.UnmarshalStrict(data, spec, kjson.DisallowUnknownFields, kjson.DisallowDuplicateFields)
	if err != nil {
		return nil, FieldErrors{gatewayAPIJSONError(err)}
	}
	if len(strict) > 0 {
		var fes FieldErrors
		for _, e := range strict {
			fes = append(fes, strictFieldError(e))
		}
		return nil, fes
	}
	return spec, nil
}

var strictFieldRE = regexp.MustCompile(`^(unknown|duplicate) field "([^"]*)"$`)

func strictFieldError(err error) FieldError {
	m := strictFieldRE.FindStringSubmatch(err.Error())
	if m == nil {
		return FieldError{Path: "spec", Reason: err.Error()}
	}
	path := joinPath("spec", m[2])
	name := m[2]
	if i := strings.LastIndexAny(name, ".]"); i >= 0 {
		name = name[i+1:]
	}
	if m[1] == "duplicate" {
		return FieldError{Path: path, Reason: fmt.Sprintf("field %q is set more than once", name)}
	}
	return FieldError{Path: path, Reason: fmt.Sprintf("unknown field %q", name)}
}

// gatewayAPIJSONError turns a type error into a field error. encoding/json
// names the field by Go struct path without list indexes; the embedded
// struct names (capitalised) are dropped so the path reads as the YAML does.
func gatewayAPIJSONError(err error) FieldError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		var parts []string
		for _, p := range strings.Split(te.Field, ".") {
			if p != "" && !(p[0] >= 'A' && p[0] <= 'Z') {
				parts = append(parts, p)
			}
		}
		return FieldError{Path: joinPath("spec", strings.Join(parts, ".")), Reason: fmt.Sprintf("expected %s, got %s", jsonTypeName(te.Type.Kind().String()), te.Value)}
	}
	return FieldError{Path: "spec", Reason: strings.TrimPrefix(err.Error(), "json: ")}
}

func jsonTypeName(goKind string) string {
	switch {
	case strings.HasPrefix(goKind, "int"), strings.HasPrefix(goKind, "uint"):
		return "integer"
	case goKind == "float32", goKind == "float64":
		return "number"
	case goKind == "slice", goKind == "array":
		return "list"
	case goKind == "struct", goKind == "map":
		return "object"
	case goKind == "bool":
		return "boolean"
	}
	return goKind
}

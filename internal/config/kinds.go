package config

import (
	"slices"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	networkingbeta "istio.io/api/networking/v1beta1"
	security "istio.io/api/security/v1beta1"
	telemetry "istio.io/api/telemetry/v1alpha1"
)

// API groups.
const (
	GroupNetworking = "networking.istio.io"
	GroupSecurity   = "security.istio.io"
	GroupTelemetry  = "telemetry.istio.io"
	GroupBowline    = "bowline.dev"
)

// Kind names.
const (
	KindVirtualService        = "VirtualService"
	KindDestinationRule       = "DestinationRule"
	KindGateway               = "Gateway"
	KindServiceEntry          = "ServiceEntry"
	KindSidecar               = "Sidecar"
	KindWorkloadEntry         = "WorkloadEntry"
	KindWorkloadGroup         = "WorkloadGroup"
	KindEnvoyFilter           = "EnvoyFilter"
	KindProxyConfig           = "ProxyConfig"
	KindPeerAuthentication    = "PeerAuthentication"
	KindAuthorizationPolicy   = "AuthorizationPolicy"
	KindRequestAuthentication = "RequestAuthentication"
	KindTelemetry             = "Telemetry"
	KindWorkload              = "Workload"
	KindRateLimit             = "RateLimit"
)

// Schema describes one supported kind.
type Schema struct {
	Group    string
	Kind     string
	Versions []string
	// Cluster-scoped kinds have no namespace (none of Istio's today;
	// the Gateway API's GatewayClass).
	ClusterScoped bool
	// NewSpec returns an empty spec message for decoding (Istio kinds).
	NewSpec func() proto.Message
	// DecodeSpec decodes a non-proto spec from JSON, rejecting unknown fields
	// (Bowline's own kinds). Exactly one of NewSpec and DecodeSpec is set.
	DecodeSpec func(json []byte) (any, error)
}

// schemas is the fixed table of kinds Bowline reads: Istio's, and Bowline's
// own Workload (see workload.go) and RateLimit (ratelimit.go).
var schemas = []Schema{
	{Group: GroupNetworking, Kind: KindVirtualService, Versions: []string{"v1", "v1beta1", "v1alpha3"}, NewSpec: func() proto.Message { return &networking.VirtualService{} }},
	{Group: GroupNetworking, Kind: KindDestinationRule, Versions: []string{"v1", "v1beta1", "v1alpha3"}, NewSpec: func() proto.Message { return &networking.DestinationRule{} }},
	{Group: GroupNetworking, Kind: KindGateway, Versions: []string{"v1", "v1beta1", "v1alpha3"}, NewSpec: func() proto.Message { return &networking.Gateway{} }},
	{Group: GroupNetworking, Kind: KindServiceEntry, Versions: []string{"v1", "v1beta1", "v1alpha3"}, NewSpec: func() proto.Message { return &networking.ServiceEntry{} }},
	{Group: GroupNetworking, Kind: KindSidecar, Versions: []string{"v1", "v1beta1", "v1alpha3"}, NewSpec: func() proto.Message { return &networking.Sidecar{} }},
	{Group: GroupNetworking, Kind: KindWorkloadEntry, Versions: []string{"v1", "v1beta1", "v1alpha3"}, NewSpec: func() proto.Message { return &networking.WorkloadEntry{} }},
	{Group: GroupNetworking, Kind: KindWorkloadGroup, Versions: []string{"v1", "v1beta1", "v1alpha3"}, NewSpec: func() proto.Message { return &networking.WorkloadGroup{} }},
	{Group: GroupNetworking, Kind: KindEnvoyFilter, Versions: []string{"v1alpha3"}, NewSpec: func() proto.Message { return &networking.EnvoyFilter{} }},
	{Group: GroupNetworking, Kind: KindProxyConfig, Versions: []string{"v1beta1"}, NewSpec: func() proto.Message { return &networkingbeta.ProxyConfig{} }},
	{Group: GroupSecurity, Kind: KindPeerAuthentication, Versions: []string{"v1", "v1beta1"}, NewSpec: func() proto.Message { return &security.PeerAuthentication{} }},
	{Group: GroupSecurity, Kind: KindAuthorizationPolicy, Versions: []string{"v1", "v1beta1"}, NewSpec: func() proto.Message { return &security.AuthorizationPolicy{} }},
	{Group: GroupSecurity, Kind: KindRequestAuthentication, Versions: []string{"v1", "v1beta1"}, NewSpec: func() proto.Message { return &security.RequestAuthentication{} }},
	{Group: GroupTelemetry, Kind: KindTelemetry, Versions: []string{"v1", "v1alpha1"}, NewSpec: func() proto.Message { return &telemetry.Telemetry{} }},
	{Group: GroupBowline, Kind: KindWorkload, Versions: []string{"v1alpha1"}, DecodeSpec: decodeWorkload},
	{Group: GroupBowline, Kind: KindRateLimit, Versions: []string{"v1alpha1"}, DecodeSpec: decodeRateLimit},
}

// allSchemas are Istio's and Bowline's kinds, then the Gateway API's (gatewayapi.go).
var allSchemas = append(slices.Clip(schemas), gatewayAPISchemas...)

// LookupSchema finds the schema for group and kind. ok is false for kinds
// Bowline does not read; versionOK is false when the kind is known but the
// version is not one Istio serves it at.
func LookupSchema(group, version, kind string) (s Schema, ok, versionOK bool) {
	for _, sc := range allSchemas {
		if sc.Group == group && sc.Kind == kind {
			for _, v := range sc.Versions {
				if v == version {
					return sc, true, true
				}
			}
			return sc, true, false
		}
	}
	return Schema{}, false, false
}

// Schemas returns every supported kind.
func Schemas() []Schema {
	return slices.Clone(allSchemas)
}

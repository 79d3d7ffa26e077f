package kube

import (
	"encoding/json"
	"fmt"
	"reflect"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	istioinformers "istio.io/client-go/pkg/informers/externalversions"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/bowline-mesh/bowline/internal/config"
)

// istioKind is one Istio CRD Bowline reads from the cluster, watched at the
// version istio.io/client-go serves it (every served version of a CRD
// holds the same objects).
type istioKind struct {
	group, version, kind string
	// resource is the kind's plural, the resource of its API path.
	resource string
	informer func(istioinformers.SharedInformerFactory) cache.SharedIndexInformer
}

// istioKinds are every Istio kind internal/config reads (config.Schemas
// without Bowline's own Workload and RateLimit, which exist only in files).
var istioKinds = []istioKind{
	{config.GroupNetworking, "v1", config.KindVirtualService, "virtualservices", func(f istioinformers.SharedInformerFactory) cache.SharedIndexInformer {
		return f.Networking().V1().VirtualServices().Informer()
	}},
	{config.GroupNetworking, "v1", config.KindDestinationRule, "destinationrules", func(f istioinformers.SharedInformerFactory) cache.SharedIndexInformer {
		return f.Networking().V1().DestinationRules().Informer()
	}},
	{config.GroupNetworking, "v1", config.KindGateway, "gateways", func(f istioinformers.SharedInformerFactory) cache.SharedIndexInformer {
		return f.Networking().V1().Gateways().Informer()
	}},
	{config.GroupNetworking, "v1", config.KindServiceEntry, "serviceentries", func(f istioinformers.SharedInformerFactory) cache.SharedIndexInformer {
		return f.Networking().V1().ServiceEntries().Informer()
	}},
	{config.GroupNetworking, "v1", config.KindSidecar, "sidecars", func(f istioinformers.SharedInformerFactory) cache.SharedIndexInformer {
		return f.Networking().V1().Sidecars().Informer()
	}},
	{config.GroupNetworking, "v1", config.KindWorkloadEntry, "workloadentries", func(f istioinformers.SharedInformerFactory) cache.SharedIndexInformer {
		return f.Networking().V1().WorkloadEntries().Informer()
	}},
	{config.GroupNetworking, "v1", config.KindWorkloadGroup, "workloadgroups", func(f istioinformers.SharedInformerFactory) cache.SharedIndexInformer {
		return f.Networking().V1().WorkloadGroups().Informer()
	}},
	{config.GroupNetworking, "v1alpha3", config.KindEnvoyFilter, "envoyfilters", func(f istioinformers.SharedInformerFactory) cache.SharedIndexInformer {
		return f.Networking().V1alpha3().EnvoyFilters().Informer()
	}},
	{config.GroupNetworking, "v1beta1", config.KindProxyConfig, "proxyconfigs", func(f istioinformers.SharedInformerFactory) cache.SharedIndexInformer {
		return f.Networking().V1beta1().ProxyConfigs().Informer()
	}},
	{config.GroupSecurity, "v1", config.KindPeerAuthentication, "peerauthentications", func(f istioinformers.SharedInformerFactory) cache.SharedIndexInformer {
		return f.Security().V1().PeerAuthentications().Informer()
	}},
	{config.GroupSecurity, "v1", config.KindAuthorizationPolicy, "authorizationpolicies", func(f istioinformers.SharedInformerFactory) cache.SharedIndexInformer {
		return f.Security().V1().AuthorizationPolicies().Informer()
	}},
	{config.GroupSecurity, "v1", config.KindRequestAuthentication, "requestauthentications", func(f istioinformers.SharedInformerFactory) cache.SharedIndexInformer {
		return f.Security().V1().RequestAuthentications().Informer()
	}},
	{config.GroupTelemetry, "v1", config.KindTelemetry, "telemetries", func(f istioinformers.SharedInformerFactory) cache.SharedIndexInformer {
		return f.Telemetry().V1().Telemetries().Informer()
	}},
}

// document is an Istio object in the form config.Parse reads: what a
// `kubectl get -o json` prints, without the fields Bowline ignores.
type document struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Metadata   documentMeta    `json:"metadata"`
	Spec       json.RawMessage `json:"spec,omitempty"`
}

type documentMeta struct {
	Name              string            `json:"name"`
	Namespace         string            `json:"namespace,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
	ResourceVersion   string            `json:"resourceVersion,omitempty"`
	Generation        int64             `json:"generation,omitempty"`
	CreationTimestamp string            `json:"creationTimestamp,omitempty"`
}

// encodeIstioObject writes a typed istio.io/client-go object (whose
// TypeMeta informers leave empty) as the JSON document of kind k, so that
// objects from the cluster go through the same decoding and validation as
// files.
func encodeIstioObject(k istioKind, obj any) ([]byte, error) {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("%s: unexpected object type %T", k.kind, obj)
	}
	om, ok := v.Elem().FieldByName("ObjectMeta").Addr().Interface().(*metav1.ObjectMeta)
	if !ok {
		return nil, fmt.Errorf("%s: object type %T has no metadata", k.kind, obj)
	}
	specField := v.Elem().FieldByName("Spec")
	if !specField.IsValid() {
		return nil, fmt.Errorf("%s: object type %T has no spec", k.kind, obj)
	}
	spec, ok := specField.Addr().Interface().(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%s: spec of %T is not a protobuf message", k.kind, obj)
	}
	specJSON, err := protojson.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("%s %s/%s: encode spec: %w", k.kind, om.Namespace, om.Name, err)
	}
	doc := document{
		APIVersion: k.group + "/" + k.version,
		Kind:       k.kind,
		Metadata: documentMeta{Name: om.Name, Namespace: om.Namespace, Labels: om.Labels, Annotations: om.Annotations,
			ResourceVersion: om.ResourceVersion, Generation: om.Generation},
		Spec: specJSON,
	}
	if !om.CreationTimestamp.IsZero() {
		doc.Metadata.CreationTimestamp = om.CreationTimestamp.UTC().Format("2006-01-02T15:04:05Z")
	}
	return json.Marshal(doc)
}

// parsed is what decoding and validating one cluster object gave.
type parsed struct {
	resourceVersion string
	objs            []*config.Object
	problems        config.Problems
}

// parseIstioObject decodes and validates one cluster object.
func parseIstioObject(k istioKind, obj any, validate config.Validator) parsed {
	data, err := encodeIstioObject(k, obj)
	var rv string
	if om, ok := obj.(metav1.Object); ok {
		rv = om.GetResourceVersion()
	}
	if err != nil {
		return parsed{resourceVersion: rv, problems: config.Problems{{Severity: config.SeverityError, Kind: k.kind, Message: err.Error()}}}
	}
	res := config.Parse("", data, config.ParseOptions{})
	valid, problems := validate(res.Objects)
	return parsed{resourceVersion: rv, objs: valid, problems: append(res.Problems, problems...)}
}

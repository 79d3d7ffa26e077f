package kube

import (
	"fmt"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/bowline-mesh/bowline/internal/config"
)

// Istio's MeshConfig ConfigMap: name and key, in the root namespace.
const (
	MeshConfigMapName = "istio"
	meshConfigKey     = "mesh"
)

// MeshConfig is the mesh-wide configuration read from the `istio`
// ConfigMap: the parsed message and the YAML as written.
type MeshConfig struct {
	// Raw is data.mesh as written ("" when the ConfigMap is absent).
	Raw string
	// Config is Raw parsed; never nil.
	Config *meshv1alpha1.MeshConfig
	// namespaces selects the namespaces discovery reads.
	namespaces namespaceFilter
}

// namespaceFilter reports whether a namespace with the given labels is
// visible to discovery (Istio's discoverySelectors: any selector
// matching, or no selectors at all).
type namespaceFilter []labels.Selector

func (f namespaceFilter) matches(nsLabels map[string]string) bool {
	if len(f) == 0 {
		return true
	}
	set := labels.Set(nsLabels)
	for _, s := range f {
		if s.Matches(set) {
			return true
		}
	}
	return false
}

// ParseMeshConfig parses the MeshConfig YAML of the `istio` ConfigMap
// (data.mesh) with config.ParseMeshConfig, the parser of files and
// --mesh-config (strict: unknown fields are an error; applied over Istio's
// defaults as istiod applies it), and compiles its discoverySelectors.
func ParseMeshConfig(raw string) (*MeshConfig, error) {
	obj, problems := config.ParseMeshConfig(config.MeshConfigParse{Kind: config.KindConfigMap,
		Meta: config.Meta{Name: MeshConfigMapName}, Field: config.MeshConfigField, FirstLine: 1}, raw)
	if problems.HasErrors() || obj == nil {
		return nil, fmt.Errorf("ConfigMap %s: %w", MeshConfigMapName, problems)
	}
	mc := config.MeshConfigOf(obj)
	if mc == nil {
		mc = config.DefaultMeshConfig()
	}
	out := &MeshConfig{Raw: raw, Config: mc}
	for i, s := range mc.GetDiscoverySelectors() {
		ls := &metav1.LabelSelector{MatchLabels: s.GetMatchLabels()}
		for _, e := range s.GetMatchExpressions() {
			ls.MatchExpressions = append(ls.MatchExpressions, metav1.LabelSelectorRequirement{
				Key: e.GetKey(), Operator: metav1.LabelSelectorOperator(e.GetOperator()), Values: e.GetValues()})
		}
		sel, err := metav1.LabelSelectorAsSelector(ls)
		if err != nil {
			return nil, fmt.Errorf("ConfigMap %s data.%s: discoverySelectors[%d]: %w", MeshConfigMapName, meshConfigKey, i, err)
		}
		out.namespaces = append(out.namespaces, sel)
	}
	return out, nil
}

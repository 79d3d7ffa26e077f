package manifest

import _ "embed"

//go:generate go run ./gencrds

// crdsYAML are Istio's CustomResourceDefinitions (networking, security,
// telemetry and extensions), as the istio.io/api module ships them.
//
//go:embed chart/crds/crds.gen.yaml
var crdsYAML []byte

// CRDs returns Istio's CustomResourceDefinitions as multi-document YAML.
func CRDs() []byte { return crdsYAML }

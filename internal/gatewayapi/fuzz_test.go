package gatewayapi

import (
	"testing"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/config/validation"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// FuzzTranslate feeds arbitrary YAML through loading and validation to
// Translate: whatever validation accepts must translate without a panic,
// and every status it reports names its object.
func FuzzTranslate(f *testing.F) {
	f.Add([]byte(services + gatewayDocs + route("default", "r", "  parentRefs: [{name: web, sectionName: http}]\n  hostnames: [a.example.com]\n  rules: [{backendRefs: [{name: a, port: 8080}]}]\n")))
	f.Add([]byte(gatewayDocs + route("other", "m", "  parentRefs: [{group: \"\", kind: Service, name: a, namespace: default}]\n  rules: [{filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /x}}}], backendRefs: [{name: a, namespace: default, port: 8080}]}]\n")))
	f.Fuzz(func(t *testing.T, data []byte) {
		res := config.Parse("fuzz.yaml", data, config.ParseOptions{})
		objs, _ := validation.Objects(res.Objects)
		out := Translate(objs, registry.Build(objs, nil).Services(), Options{Domain: "cluster.local"})
		for _, st := range out.Status {
			if st.Kind == "" || st.Name == "" {
				t.Fatalf("status without an object: %+v", st)
			}
		}
	})
}

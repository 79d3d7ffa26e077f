package config

import (
	"strings"
	"testing"

	networking "istio.io/api/networking/v1alpha3"
)

const reviewsVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination:
        host: reviews
        subset: v2
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 80
    - destination:
        host: reviews
        subset: v3
      weight: 20
    timeout: 500ms
`

func TestParseVirtualService(t *testing.T) {
	res := Parse("reviews.yaml", []byte(reviewsVS), ParseOptions{})
	if len(res.Problems) != 0 {
		t.Fatalf("problems: %v", res.Problems)
	}
	if len(res.Objects) != 1 {
		t.Fatalf("got %d objects, want 1", len(res.Objects))
	}
	obj := res.Objects[0]
	if got := obj.Ref(); got != "VirtualService default/reviews" {
		t.Errorf("ref = %q", got)
	}
	vs := obj.Spec.(*networking.VirtualService)
	if got := vs.Http[1].Route[1].Weight; got != 20 {
		t.Errorf("weight = %d, want 20", got)
	}
	if got := vs.Http[1].Timeout.AsDuration().String(); got != "500ms" {
		t.Errorf("timeout = %s, want 500ms", got)
	}
	if got := vs.Http[0].Match[0].Headers["end-user"].GetExact(); got != "jason" {
		t.Errorf("header match = %q", got)
	}
	if got := obj.Lines.Line("spec.http[1].route[1].weight", 0); got != 25 {
		t.Errorf("line of weight = %d, want 25", got)
	}
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{"unknown field", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [r]\n  htp: []\n", "f.yaml:6: VirtualService default/r: spec.htp: unknown field \"htp\" in VirtualService"},
		{"wrong type", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: r\n", "f.yaml:5: VirtualService default/r: spec.hosts: expected list, got string"},
		{"bad weight type", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [r]\n  http:\n  - route:\n    - destination: {host: r}\n      weight: high\n", "f.yaml:9: VirtualService default/r: spec.http[0].route[0].weight: expected integer, got string \"high\""},
		{"bad enum", "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: r}\nspec:\n  hosts: [r.com]\n  resolution: MAGIC\n", "f.yaml:6: ServiceEntry default/r: spec.resolution: unknown value \"MAGIC\" for Resolution"},
		{"oneof twice", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [r]\n  http:\n  - match:\n    - uri: {exact: /a, prefix: /b}\n", "only one of \"exact\" and \"prefix\" may be set"},
		{"bad duration", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [r]\n  http:\n  - timeout: soon\n", "f.yaml:7: VirtualService default/r: spec.http[0].timeout: invalid duration \"soon\""},
		{"missing name", "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {}\n", "metadata.name: required"},
		{"bad version", "apiVersion: security.istio.io/v1alpha3\nkind: PeerAuthentication\nmetadata: {name: x}\n", "apiVersion: PeerAuthentication is not served at version v1alpha3"},
		{"bad yaml", "apiVersion: [\n", "invalid YAML"},
		{"recursive alias", "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: e}\nspec:\n  configPatches:\n  - patch:\n      value: &x {a: *x}\n", "nested too deeply (recursive alias?)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Parse("f.yaml", []byte(tt.doc), ParseOptions{})
			if len(res.Objects) != 0 {
				t.Errorf("got an object for an invalid document")
			}
			if !strings.Contains(res.Problems.Error(), tt.want) {
				t.Errorf("problems:\n%s\nwant substring:\n%s", res.Problems.Error(), tt.want)
			}
		})
	}
}

func TestParseListAndSkipped(t *testing.T) {
	doc := `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
---
apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1beta1
  kind: DestinationRule
  metadata: {name: reviews, namespace: shop}
  spec: {host: reviews}
- apiVersion: security.istio.io/v1beta1
  kind: PeerAuthentication
  metadata: {name: default}
  spec: {mtls: {mode: STRICT}}
`
	res := Parse("f.yaml", []byte(doc), ParseOptions{Namespace: "team"})
	if len(res.Problems) != 0 {
		t.Fatalf("problems: %v", res.Problems)
	}
	if len(res.Skipped) != 1 || res.Skipped[0].Kind != "Deployment" {
		t.Fatalf("skipped = %+v", res.Skipped)
	}
	var refs []string
	for _, o := range res.Objects {
		refs = append(refs, o.Ref())
	}
	if got := strings.Join(refs, ","); got != "DestinationRule shop/reviews,PeerAuthentication team/default" {
		t.Errorf("objects = %s", got)
	}
}

func TestParseWorkload(t *testing.T) {
	good := `apiVersion: bowline.dev/v1alpha1
kind: Workload
metadata: {name: reviews-v2}
spec:
  serviceAccount: bookinfo-reviews
  labels: {app: reviews, version: v2}
  command: ["./bin/reviews"]
  env: {STAR_COLOR: black}
  ports: [{name: http, containerPort: 9080}]
`
	res := Parse("w.yaml", []byte(good), ParseOptions{})
	if len(res.Problems) != 0 || len(res.Objects) != 1 {
		t.Fatalf("problems %v, objects %d", res.Problems, len(res.Objects))
	}
	w := res.Objects[0].Spec.(*WorkloadSpec)
	if w.Replicas != 1 || w.Env["STAR_COLOR"] != "black" || w.Ports[0].ContainerPort != 9080 {
		t.Errorf("spec = %+v", w)
	}
	tests := []struct{ name, spec, want string }{
		{"no command", "spec: {labels: {app: a}}", "w.yaml:4: Workload default/w: spec.command: required: the program to run"},
		{"unknown field", "spec:\n  command: [x]\n  replica: 2", `w.yaml:6: Workload default/w: spec.replica: unknown field "replica" in Workload`},
		{"bad port", "spec:\n  command: [x]\n  ports: [{name: http, containerPort: 70000}]", "w.yaml:6: Workload default/w: spec.ports[0].containerPort: must be between 1 and 65535"},
		{"bad label", "spec:\n  command: [x]\n  labels: {app: 'a b'}", "spec.labels[app]: invalid label value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Parse("w.yaml", []byte("apiVersion: bowline.dev/v1alpha1\nkind: Workload\nmetadata: {name: w}\n"+tt.spec+"\n"), ParseOptions{})
			if len(res.Objects) != 0 || !strings.Contains(res.Problems.Error(), tt.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", res.Problems.Error(), tt.want)
			}
		})
	}
}

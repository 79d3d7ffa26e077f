package config

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

const meshConfigMap = `apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
data:
  mesh: |
    enableTracing: false
    accessLogFile: /dev/stdout
    accessLogEncoding: JSON
    defaultConfig:
      tracing:
        sampling: 25
    outboundTrafficPolicy:
      mode: REGISTRY_ONLY
    extensionProviders:
    - name: otel
      opentelemetry:
        service: jaeger.observability.svc.cluster.local
        port: 4317
    - name: envoy
      envoyFileAccessLog:
        path: /tmp/access.log
    defaultProviders:
      tracing: [otel]
`

func TestParseMeshConfigMap(t *testing.T) {
	res := Parse("mesh.yaml", []byte(meshConfigMap), ParseOptions{})
	if len(res.Problems) > 0 || len(res.Objects) != 1 {
		t.Fatalf("got %d objects, problems %v", len(res.Objects), res.Problems)
	}
	obj := res.Objects[0]
	if obj.Ref() != "ConfigMap istio-system/istio" {
		t.Errorf("ref = %q", obj.Ref())
	}
	mc := MeshConfigOf(obj)
	if mc.GetEnableTracing() {
		t.Errorf("enableTracing: false was not applied over the default true")
	}
	if mc.GetAccessLogEncoding() != meshv1alpha1.MeshConfig_JSON || mc.GetAccessLogFile() != "/dev/stdout" {
		t.Errorf("access log = %v %q", mc.GetAccessLogEncoding(), mc.GetAccessLogFile())
	}
	if got := mc.GetDefaultConfig().GetTracing().GetSampling(); got != 25 {
		t.Errorf("sampling = %v, want 25", got)
	}
	if mc.GetOutboundTrafficPolicy().GetMode() != meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY {
		t.Errorf("outbound policy = %v", mc.GetOutboundTrafficPolicy())
	}
	// Defaults the file did not touch stay; providers merge by name.
	if mc.GetTrustDomain() != "cluster.local" || mc.GetRootNamespace() != "istio-system" {
		t.Errorf("trustDomain %q rootNamespace %q, want the defaults", mc.GetTrustDomain(), mc.GetRootNamespace())
	}
	var names []string
	for _, p := range mc.GetExtensionProviders() {
		names = append(names, p.GetName())
	}
	if got := strings.Join(names, ","); got != "otel,envoy,prometheus" {
		t.Errorf("providers = %s, want otel,envoy,prometheus", got)
	}
	if got := mc.GetExtensionProviders()[1].GetEnvoyFileAccessLog().GetPath(); got != "/tmp/access.log" {
		t.Errorf("provider envoy path = %q, want the user's override", got)
	}
	if got := obj.Lines.Line("data.mesh.defaultConfig.tracing.sampling", 0); got != 13 {
		t.Errorf("line of sampling = %d, want 13", got)
	}
}

func TestParseMeshConfigProblems(t *testing.T) {
	cm := func(ns, data string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: istio\n  namespace: " + ns + "\ndata:\n" + data
	}
	cases := []struct {
		name, yaml string
		want       []string
		objects    int
	}{
		{name: "unknown field", yaml: cm("istio-system", "  mesh: |\n    defaultConfig:\n      tracing:\n        samplng: 5\n"),
			want: []string{`m.yaml:10: ConfigMap istio-system/istio: data.mesh.defaultConfig.tracing.samplng: unknown field "samplng" in Tracing`}},
		{name: "wrong type", yaml: cm("istio-system", "  mesh: |\n    enableTracing: maybe\n"),
			want: []string{`m.yaml:8: ConfigMap istio-system/istio: data.mesh.enableTracing: expected boolean, got string "maybe"`}},
		{name: "unknown enum", yaml: cm("istio-system", "  mesh: |\n    accessLogEncoding: XML\n"),
			want: []string{`m.yaml:8: ConfigMap istio-system/istio: data.mesh.accessLogEncoding: unknown value "XML" for AccessLogEncoding (allowed: TEXT, JSON)`}},
		{name: "invalid yaml", yaml: cm("istio-system", "  mesh: |\n    a: b\n    - c\n"),
			want: []string{`m.yaml:8: ConfigMap istio-system/istio: data.mesh: invalid YAML: did not find expected key`}},
		{name: "mesh not a string", yaml: cm("istio-system", "  mesh:\n    enableTracing: true\n"),
			want: []string{`m.yaml:7: ConfigMap istio-system/istio: data.mesh: expected MeshConfig YAML as a string (mesh: |), got object`}},
		{name: "other namespace", yaml: cm("default", "  mesh: |\n    enableTracing: true\n"),
			want: []string{`m.yaml:5: warning: ConfigMap default/istio: metadata.namespace: ignored: the mesh config is the ConfigMap istio in namespace istio-system (the root namespace)`}},
		{name: "other keys", yaml: cm("istio-system", "  meshNetworks: 'networks: {}'\n  mesh: ''\n"), objects: 1,
			want: []string{`m.yaml:7: warning: ConfigMap istio-system/istio: data.meshNetworks: ignored: Bowline reads only data.mesh of this ConfigMap`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := Parse("m.yaml", []byte(tc.yaml), ParseOptions{})
			var got []string
			for _, p := range res.Problems {
				got = append(got, p.String())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if len(res.Objects) != tc.objects {
				t.Errorf("objects = %d, want %d", len(res.Objects), tc.objects)
			}
		})
	}
}

func TestParseMeshConfigDefaults(t *testing.T) {
	obj, problems := ParseMeshConfigFile("mesh.yaml", nil, "mesh-ns")
	if problems != nil {
		t.Fatal(problems)
	}
	mc := MeshConfigOf(obj)
	if !mc.GetEnableTracing() || mc.GetRootNamespace() != "mesh-ns" || mc.GetOutboundTrafficPolicy().GetMode() != meshv1alpha1.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY {
		t.Errorf("defaults: enableTracing %v rootNamespace %q outbound %v", mc.GetEnableTracing(), mc.GetRootNamespace(), mc.GetOutboundTrafficPolicy())
	}
	if obj.Ref() != "MeshConfig mesh-ns/istio" {
		t.Errorf("ref = %q", obj.Ref())
	}
}

// TestDirSourceMeshConfigFile: --mesh-config is read, reloaded on change,
// keeps its last good version on a bad edit, and replaces the directory's ConfigMap.
func TestDirSourceMeshConfigFile(t *testing.T) {
	dir, meshDir := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "istio.yaml"), []byte(meshConfigMap), 0o644); err != nil {
		t.Fatal(err)
	}
	meshFile := filepath.Join(meshDir, "mesh.yaml")
	if err := os.WriteFile(meshFile, []byte("defaultConfig:\n  tracing:\n    sampling: 10\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	store := NewStore()
	src := NewDirSource(DirSourceConfig{Dir: dir, Debounce: 20 * time.Millisecond, MeshConfigFile: meshFile}, store)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := src.Run(ctx); err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	defer wg.Wait()
	defer cancel()
	sampling := func(s *Snapshot) float64 {
		for _, o := range s.Objects {
			if mc := MeshConfigOf(o); mc != nil {
				return mc.GetDefaultConfig().GetTracing().GetSampling()
			}
		}
		return -1
	}
	snap := waitFor(t, store, "first load", func(s *Snapshot) bool { return sampling(s) == 10 })
	if len(snap.Objects) != 1 || snap.Objects[0].GVK.Kind != KindMeshConfig {
		t.Fatalf("objects %v, want only the --mesh-config file's", snap.Objects)
	}
	want := dir + "/istio.yaml:4: warning: ConfigMap istio-system/istio: metadata.name: ignored: the mesh config file " + meshFile + " (--mesh-config) is in force"
	if len(snap.Problems) != 1 || snap.Problems[0].String() != want {
		t.Errorf("problems %v, want %q", snap.Problems, want)
	}
	if err := os.WriteFile(meshFile, []byte("defaultConfig:\n  tracing:\n    sampling: 50\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, store, "reload", func(s *Snapshot) bool { return sampling(s) == 50 })
	if err := os.WriteFile(meshFile, []byte("defaultConfig:\n  tracing:\n    sampling: lots\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	snap = waitFor(t, store, "bad edit reported", func(s *Snapshot) bool { return len(s.Problems) == 2 })
	if got := snap.Problems[1].String(); got != meshFile+`:3: MeshConfig istio-system/istio: defaultConfig.tracing.sampling: expected number, got string "lots"` {
		t.Errorf("problem = %s", got)
	}
	if got := sampling(snap); got != 50 {
		t.Errorf("sampling after a bad edit = %v, want the last good 50", got)
	}
}

package inject

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testImage = "bowline/bowline:test"

func testConfig() Config {
	c := Defaults(testImage)
	c.ImagePullPolicy = corev1.PullIfNotPresent
	return c
}

// golden compares got with testdata/name.golden (-update rewrites it).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run with -update to accept):\n%s", path, got)
	}
}

func TestFileGolden(t *testing.T) {
	for _, name := range []string{"deployment", "annotations", "classic", "probes", "multi", "list", "nocapture"} {
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", name+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			var warnings []string
			if err := File(testConfig(), bytes.NewReader(in), &out, func(s string) { warnings = append(warnings, s) }); err != nil {
				t.Fatal(err)
			}
			got := out.String()
			if len(warnings) > 0 {
				got = "# warnings:\n# " + strings.Join(warnings, "\n# ") + "\n" + got
			}
			golden(t, name, got)
		})
	}
}

// Injecting an injected workload again gives the same result.
func TestFileIdempotent(t *testing.T) {
	for _, name := range []string{"deployment", "annotations", "classic", "probes", "multi"} {
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", name+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var once, twice bytes.Buffer
			if err := File(testConfig(), bytes.NewReader(in), &once, nil); err != nil {
				t.Fatal(err)
			}
			if err := File(testConfig(), bytes.NewReader(once.Bytes()), &twice, nil); err != nil {
				t.Fatal(err)
			}
			if name == "probes" {
				// The app's prometheus.io settings live in the first sidecar's
				// environment; like Istio, a second injection cannot recover
				// them. Everything else must match.
				return
			}
			if once.String() != twice.String() {
				t.Errorf("second injection differs:\n--- once\n%s\n--- twice\n%s", once.String(), twice.String())
			}
		})
	}
}

func TestFileErrors(t *testing.T) {
	pod := func(ann string) string {
		return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: ns\n  annotations:\n    " + ann + "\nspec:\n  containers:\n  - name: app\n    image: app\n"
	}
	tests := []struct {
		name, in, want string
	}{
		{"cpu", pod(`sidecar.istio.io/proxyCPU: lots`), `document 1: Pod ns/p: annotation sidecar.istio.io/proxyCPU: value "lots": not a resource quantity (like 100m or 128Mi)`},
		{"log level", pod(`sidecar.istio.io/logLevel: loud`), `document 1: Pod ns/p: annotation sidecar.istio.io/logLevel: value "loud": want one of trace, debug, info, warning, warn, error, critical, off`},
		{"cidr", pod(`traffic.sidecar.istio.io/includeOutboundIPRanges: "10.0.0.0/33"`), `document 1: Pod ns/p: annotation traffic.sidecar.istio.io/includeOutboundIPRanges: value "10.0.0.0/33": "10.0.0.0/33" is not a CIDR`},
		{"ipv6", pod(`traffic.sidecar.istio.io/excludeOutboundIPRanges: "fd00::/8"`), `document 1: Pod ns/p: annotation traffic.sidecar.istio.io/excludeOutboundIPRanges: value "fd00::/8": "fd00::/8": only IPv4 ranges are supported`},
		{"star exclude", pod(`traffic.sidecar.istio.io/excludeInboundPorts: "*"`), `document 1: Pod ns/p: annotation traffic.sidecar.istio.io/excludeInboundPorts: value "*": "*" is not a port from 1 to 65535`},
		{"port", pod(`traffic.sidecar.istio.io/excludeOutboundPorts: "5432,70000"`), `document 1: Pod ns/p: annotation traffic.sidecar.istio.io/excludeOutboundPorts: value "5432,70000": "70000" is not a port from 1 to 65535`},
		{"proxy config field", pod(`proxy.istio.io/config: "holdApplicationUntilProxyStart: true"`), `document 1: Pod ns/p: annotation proxy.istio.io/config: value "holdApplicationUntilProxyStart: true": not a ProxyConfig: `},
		{"tproxy", pod(`sidecar.istio.io/interceptionMode: TPROXY`), `document 1: Pod ns/p: annotation sidecar.istio.io/interceptionMode: value "TPROXY": TPROXY is not supported by Bowline; use REDIRECT or NONE`},
		{"native", pod(`sidecar.istio.io/nativeSidecar: "yes"`), `document 1: Pod ns/p: annotation sidecar.istio.io/nativeSidecar: value "yes": want true or false`},
		{"prometheus port", pod(`prometheus.io/port: "15020"`), `document 1: Pod ns/p: annotation prometheus.io/port: value "15020": the sidecar's status port cannot be the app's metrics port`},
		{"named probe port", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: app\n    image: app\n    livenessProbe:\n      httpGet:\n        port: web\n",
			`document 1: Pod p: container "app": livez probe: field httpGet.port: no container port is named "web"`},
		{"unknown field", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  replica: 2\n", `document 1: Deployment: error unmarshaling JSON: while decoding JSON: json: unknown field "replica"`},
		{"rc without template", "apiVersion: v1\nkind: ReplicationController\nmetadata:\n  name: rc\nspec: {}\n", `document 1: ReplicationController rc: field spec.template: required`},
		{"second document", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n---\n" + pod(`sidecar.istio.io/proxyMemory: 1GB`), `document 2: Pod ns/p: annotation sidecar.istio.io/proxyMemory: value "1GB": not a resource quantity`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := File(testConfig(), strings.NewReader(tt.in), &out, nil)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %v\nwant prefix %s", err, tt.want)
			}
		})
	}
}

func TestSelected(t *testing.T) {
	tests := []struct {
		name     string
		rev      string
		ns, pod  map[string]string
		selected bool
	}{
		{"namespace enabled", "", map[string]string{"istio-injection": "enabled"}, nil, true},
		{"namespace enabled, pod off", "", map[string]string{"istio-injection": "enabled"}, map[string]string{"sidecar.istio.io/inject": "false"}, false},
		{"namespace enabled, pod on", "", map[string]string{"istio-injection": "enabled"}, map[string]string{"sidecar.istio.io/inject": "true"}, true},
		{"namespace disabled, pod on", "", map[string]string{"istio-injection": "disabled"}, map[string]string{"sidecar.istio.io/inject": "true"}, false},
		{"namespace enabled wins over its revision", "canary", map[string]string{"istio-injection": "enabled", "istio.io/rev": "canary"}, nil, false},
		{"namespace enabled with revision: default injects", "", map[string]string{"istio-injection": "enabled", "istio.io/rev": "canary"}, nil, true},
		{"namespace revision", "canary", map[string]string{"istio.io/rev": "canary"}, nil, true},
		{"namespace revision, other injector", "", map[string]string{"istio.io/rev": "canary"}, nil, false},
		{"namespace revision default", "", map[string]string{"istio.io/rev": "default"}, nil, true},
		{"namespace revision, pod off", "canary", map[string]string{"istio.io/rev": "canary"}, map[string]string{"sidecar.istio.io/inject": "false"}, false},
		{"unlabelled namespace, pod on", "", nil, map[string]string{"sidecar.istio.io/inject": "true"}, true},
		{"unlabelled namespace, pod on, revision injector", "canary", nil, map[string]string{"sidecar.istio.io/inject": "true"}, false},
		{"unlabelled namespace, pod revision", "canary", nil, map[string]string{"istio.io/rev": "canary"}, true},
		{"unlabelled namespace, pod revision and on: only that revision", "", nil, map[string]string{"istio.io/rev": "canary", "sidecar.istio.io/inject": "true"}, false},
		{"unlabelled namespace, pod revision, pod off", "canary", nil, map[string]string{"istio.io/rev": "canary", "sidecar.istio.io/inject": "false"}, false},
		{"nothing labelled", "", nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Selected(tt.rev, tt.ns, tt.pod); got != tt.selected {
				t.Errorf("Selected(%q, %v, %v) = %v, want %v", tt.rev, tt.ns, tt.pod, got, tt.selected)
			}
		})
	}
}

func TestRequired(t *testing.T) {
	mk := func(labels, ann map[string]string, host bool) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: labels, Annotations: ann}, Spec: corev1.PodSpec{HostNetwork: host}}
	}
	tests := []struct {
		name string
		pod  *corev1.Pod
		ns   string
		want bool
		why  string
	}{
		{"plain", mk(nil, nil, false), "default", true, ""},
		{"annotation off", mk(nil, map[string]string{"sidecar.istio.io/inject": "false"}, false), "default", false, `sidecar injection is disabled (sidecar.istio.io/inject: "false")`},
		{"label on beats annotation off", mk(map[string]string{"sidecar.istio.io/inject": "true"}, map[string]string{"sidecar.istio.io/inject": "false"}, false), "default", true, ""},
		{"label off beats annotation on", mk(map[string]string{"sidecar.istio.io/inject": "false"}, map[string]string{"sidecar.istio.io/inject": "true"}, false), "default", false, `sidecar injection is disabled (sidecar.istio.io/inject: "false")`},
		{"host network", mk(nil, nil, true), "default", false, "the pod uses host networking"},
		{"kube-system", mk(nil, nil, false), "kube-system", false, "namespace kube-system is never injected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := Required(tt.pod, tt.ns)
			if got != tt.want || why != tt.why {
				t.Errorf("Required = %v %q, want %v %q", got, why, tt.want, tt.why)
			}
		})
	}
}

func TestOwnerOf(t *testing.T) {
	yes := true
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "reviews-v1-5c7d9f8b4-", Namespace: "default",
		Labels:          map[string]string{"pod-template-hash": "5c7d9f8b4"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "reviews-v1-5c7d9f8b4", Controller: &yes}}}}
	if got, want := OwnerOf(pod), (Owner{APIVersion: "apps/v1", Kind: "Deployment", Name: "reviews-v1", Namespace: "default"}); got != want {
		t.Errorf("ReplicaSet pod: %+v, want %+v", got, want)
	}
	pod.OwnerReferences[0] = metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", Controller: &yes}
	if got := OwnerOf(pod); got.Kind != "StatefulSet" || got.Name != "db" {
		t.Errorf("StatefulSet pod: %+v", got)
	}
	bare := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "debug-"}}
	if got := OwnerOf(bare); got.Kind != "Pod" || got.Name != "debug" {
		t.Errorf("bare pod: %+v", got)
	}
}

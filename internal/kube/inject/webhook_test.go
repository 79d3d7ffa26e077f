package inject

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

func postReview(t *testing.T, wh http.Handler, body []byte) (*http.Response, admissionv1.AdmissionReview) {
	t.Helper()
	srv := httptest.NewServer(wh)
	defer srv.Close()
	resp, err := http.Post(srv.URL+WebhookPath, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out admissionv1.AdmissionReview
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
	}
	return resp, out
}

func readReview(t *testing.T) ([]byte, admissionv1.AdmissionReview) {
	t.Helper()
	body, err := os.ReadFile("testdata/admissionreview.json")
	if err != nil {
		t.Fatal(err)
	}
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &ar); err != nil {
		t.Fatal(err)
	}
	return body, ar
}

// The webhook answers a real AdmissionReview (a ReplicaSet's pod as the API
// server sends it) with a JSONPatch; applied to the pod it gives exactly what
// Pod returns, and the same sidecar kube-inject writes for the Deployment.
func TestWebhookInjects(t *testing.T) {
	body, ar := readReview(t)
	resp, out := postReview(t, &Webhook{Config: testConfig()}, body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || out.Response == nil {
		t.Fatalf("response review: %+v", out)
	}
	r := out.Response
	if r.UID != ar.Request.UID || !r.Allowed || r.PatchType == nil || *r.PatchType != admissionv1.PatchTypeJSONPatch || len(r.Patch) == 0 {
		t.Fatalf("response: uid %q allowed %v patch type %v, %d patch bytes (want uid %q)", r.UID, r.Allowed, r.PatchType, len(r.Patch), ar.Request.UID)
	}
	patch, err := jsonpatch.DecodePatch(r.Patch)
	if err != nil {
		t.Fatalf("patch is not RFC 6902: %v", err)
	}
	patched, err := patch.Apply(ar.Request.Object.Raw)
	if err != nil {
		t.Fatalf("apply patch: %v", err)
	}
	var got corev1.Pod
	if err := json.Unmarshal(patched, &got); err != nil {
		t.Fatal(err)
	}

	var orig corev1.Pod
	if err := json.Unmarshal(ar.Request.Object.Raw, &orig); err != nil {
		t.Fatal(err)
	}
	want, err := Pod(testConfig(), &orig, OwnerOf(&orig))
	if err != nil {
		t.Fatal(err)
	}
	// Compare the wire form (Quantity caches its string form inside).
	if g, w := mustYAML(t, &got), mustYAML(t, want); g != w {
		t.Errorf("patched pod differs from Pod():\n--- patched\n%s\n--- Pod()\n%s", g, w)
	}
	if got.ManagedFields != nil {
		t.Error("managedFields were kept")
	}
	if got.Spec.InitContainers[1].Args[9] != "--workload=details-v1" {
		t.Errorf("workload of a ReplicaSet's pod: %s, want the Deployment's name", got.Spec.InitContainers[1].Args[9])
	}

	// kube-inject of the Deployment: the same sidecar, volumes, labels and
	// annotations.
	in, err := os.ReadFile("testdata/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := File(testConfig(), bytes.NewReader(in), &buf, nil); err != nil {
		t.Fatal(err)
	}
	var d struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(buf.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	tmpl := d.Spec.Template
	if mustYAML(t, got.Spec.InitContainers) != mustYAML(t, tmpl.Spec.InitContainers) {
		t.Errorf("webhook and kube-inject init containers differ:\n%+v\n%+v", got.Spec.InitContainers, tmpl.Spec.InitContainers)
	}
	if n := len(tmpl.Spec.Volumes); mustYAML(t, got.Spec.Volumes[len(got.Spec.Volumes)-n:]) != mustYAML(t, tmpl.Spec.Volumes) {
		t.Errorf("webhook and kube-inject volumes differ")
	}
	delete(got.Labels, "pod-template-hash")
	if !reflect.DeepEqual(got.Labels, tmpl.Labels) || !reflect.DeepEqual(got.Annotations, tmpl.Annotations) {
		t.Errorf("webhook and kube-inject metadata differ:\n%v %v\n%v %v", got.Labels, got.Annotations, tmpl.Labels, tmpl.Annotations)
	}
}

func TestWebhookDecisions(t *testing.T) {
	body, ar := readReview(t)
	withPod := func(edit func(p map[string]any)) []byte {
		var r map[string]any
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatal(err)
		}
		edit(r["request"].(map[string]any)["object"].(map[string]any))
		b, _ := json.Marshal(r)
		return b
	}
	setMeta := func(key string, kv map[string]any) func(map[string]any) {
		return func(p map[string]any) {
			m := p["metadata"].(map[string]any)
			if m[key] == nil {
				m[key] = map[string]any{}
			}
			for k, v := range kv {
				m[key].(map[string]any)[k] = v
			}
		}
	}
	nsLabels := map[string]map[string]string{"default": {"istio-injection": "enabled"}, "legacy": {}}

	tests := []struct {
		name    string
		wh      *Webhook
		body    []byte
		allowed bool
		patched bool
		message string
	}{
		{"disabled by label", &Webhook{Config: testConfig()},
			withPod(setMeta("labels", map[string]any{"sidecar.istio.io/inject": "false"})), true, false, ""},
		{"disabled by annotation", &Webhook{Config: testConfig()},
			withPod(setMeta("annotations", map[string]any{"sidecar.istio.io/inject": "false"})), true, false, ""},
		{"host network", &Webhook{Config: testConfig()},
			withPod(func(p map[string]any) { p["spec"].(map[string]any)["hostNetwork"] = true }), true, false, ""},
		{"namespace selects", &Webhook{Config: testConfig(), NamespaceLabels: func(ns string) (map[string]string, bool) { l, ok := nsLabels[ns]; return l, ok }},
			body, true, true, ""},
		{"namespace does not select", &Webhook{Config: testConfig(), NamespaceLabels: func(string) (map[string]string, bool) { return nsLabels["legacy"], true }},
			body, true, false, ""},
		{"bad annotation is refused with the reason", &Webhook{Config: testConfig()},
			withPod(setMeta("annotations", map[string]any{"sidecar.istio.io/proxyMemory": "lots"})), false, false,
			`pod default/details-v1-7d88846999: annotation sidecar.istio.io/proxyMemory: value "lots": not a resource quantity (like 100m or 128Mi)`},
		{"not a pod", &Webhook{Config: testConfig()},
			bytes.Replace(body, []byte(`"requestKind"`), []byte(`"kind": {"group": "apps", "version": "v1", "kind": "Deployment"}, "x"`), 1), false, false,
			"the sidecar injector takes pods, got apps Deployment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, out := postReview(t, tt.wh, tt.body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			r := out.Response
			if r.UID != ar.Request.UID || r.Allowed != tt.allowed || (len(r.Patch) > 0) != tt.patched {
				t.Errorf("uid %q allowed %v patched %v, want allowed %v patched %v", r.UID, r.Allowed, len(r.Patch) > 0, tt.allowed, tt.patched)
			}
			if tt.message != "" && (r.Result == nil || r.Result.Message != tt.message || r.Result.Code != http.StatusBadRequest) {
				t.Errorf("result = %+v, want message %q", r.Result, tt.message)
			}
		})
	}
}

func TestWebhookTransportErrors(t *testing.T) {
	body, _ := readReview(t)
	srv := httptest.NewServer(&Webhook{Config: testConfig()})
	defer srv.Close()
	tests := []struct {
		name, method, ctype, body string
		code                      int
		text                      string
	}{
		{"GET", http.MethodGet, "", "", http.StatusMethodNotAllowed, "use POST with an AdmissionReview"},
		{"yaml", http.MethodPost, "application/yaml", string(body), http.StatusUnsupportedMediaType, `content type "application/yaml": want application/json`},
		{"garbage", http.MethodPost, "application/json", "{", http.StatusBadRequest, "decode admission review: unexpected end of JSON input"},
		{"no request", http.MethodPost, "application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, http.StatusBadRequest, "admission review has no request"},
		{"v1beta1", http.MethodPost, "application/json", strings.Replace(string(body), "admission.k8s.io/v1", "admission.k8s.io/v1beta1", 1), http.StatusBadRequest,
			"admission review is admission.k8s.io/v1beta1 AdmissionReview: want admission.k8s.io/v1 AdmissionReview"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+WebhookPath, strings.NewReader(tt.body))
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			if resp.StatusCode != tt.code || strings.TrimSpace(b.String()) != tt.text {
				t.Errorf("%d %q, want %d %q", resp.StatusCode, b.String(), tt.code, tt.text)
			}
		})
	}
}

func mustYAML(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

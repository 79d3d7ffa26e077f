package kube_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/config/validation"
	"github.com/bowline-mesh/bowline/internal/kube"
)

// selfSigned returns a serving certificate for 127.0.0.1 and its PEM.
func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "webhook"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pemCert := pemEncode("CERTIFICATE", der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pemCert
}

func pemEncode(typ string, der []byte) []byte {
	var b bytes.Buffer
	b.WriteString("-----BEGIN " + typ + "-----\n")
	enc := base64.StdEncoding.EncodeToString(der)
	for len(enc) > 64 {
		b.WriteString(enc[:64] + "\n")
		enc = enc[64:]
	}
	b.WriteString(enc + "\n-----END " + typ + "-----\n")
	return b.Bytes()
}

// validateMessage is what `bowline validate` reports for doc, without the file:line prefix.
func validateMessage(t *testing.T, doc string) string {
	t.Helper()
	res := config.Parse("", []byte(doc), config.ParseOptions{})
	_, problems := validation.Objects(res.Objects)
	problems = append(res.Problems, problems...)
	if len(problems) == 0 {
		t.Fatalf("no problems in %s", doc)
	}
	return problems.Error()
}

const brokenVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken, namespace: wh}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}], redirect: {uri: /elsewhere}}]
`

func TestValidationWebhookThroughAPIServer(t *testing.T) {
	c, _, _ := cluster(t)
	cert, caPEM := selfSigned(t)
	srv := kube.NewWebhookServer("127.0.0.1:0", func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil },
		kube.WebhookMux(kube.NewValidationHandler(validation.Objects, nil), nil, nil), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	runCtx, stop := context.WithCancel(ctx)
	go func() { done <- srv.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("webhook: %v", err)
		}
	}()
	addr := srv.Addr(ctx)
	// The API server calls the webhook on loopback by URL; `bowline install`
	// points it at the discovery Service instead.
	webhook := `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: bowline-validator-test}
webhooks:
- name: validation.istio.io
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: wh}}
  clientConfig:
    url: https://` + addr.String() + kube.ValidatePath + `
    caBundle: ` + base64.StdEncoding.EncodeToString(caPEM) + `
  rules:
  - operations: [CREATE, UPDATE]
    apiGroups: [networking.istio.io, security.istio.io, telemetry.istio.io]
    apiVersions: ["*"]
    resources: ["*"]
---
apiVersion: v1
kind: Namespace
metadata: {name: wh}
`
	if err := apply(t, c, webhook); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Clientset(t).AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), "bowline-validator-test", metav1.DeleteOptions{})
	})
	want := `admission webhook "validation.istio.io" denied the request: ` + validateMessage(t, brokenVS)
	if want != `admission webhook "validation.istio.io" denied the request: VirtualService wh/broken: spec.http[0].redirect: route and redirect cannot both be set` {
		t.Fatalf("validate says %q", want)
	}
	// The webhook configuration takes effect asynchronously: poll until
	// the API server calls it.
	eventually(t, func() string {
		err := apply(t, c, brokenVS)
		if err == nil {
			return "invalid VirtualService was accepted"
		}
		if !strings.Contains(err.Error(), want) {
			return "apply error: " + err.Error() + "\nwant it to contain: " + want
		}
		return ""
	})
	if err := apply(t, c, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: fine, namespace: wh}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}]}]
`); err != nil {
		t.Fatalf("valid VirtualService refused: %v", err)
	}
}

func TestValidationHandler(t *testing.T) {
	h := kube.NewValidationHandler(validation.Objects, nil)
	review := func(t *testing.T, op admissionv1.Operation, object string) *admissionv1.AdmissionResponse {
		t.Helper()
		ar := admissionv1.AdmissionReview{Request: &admissionv1.AdmissionRequest{UID: "u-1", Operation: op, Namespace: "default"}}
		if object != "" {
			ar.Request.Object = runtime.RawExtension{Raw: []byte(object)}
		}
		ar.APIVersion, ar.Kind = "admission.k8s.io/v1", "AdmissionReview"
		body, _ := json.Marshal(ar)
		req := httptest.NewRequest(http.MethodPost, kube.ValidatePath, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		var out admissionv1.AdmissionReview
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatal(err)
		}
		if out.Response == nil || out.Response.UID != "u-1" {
			t.Fatalf("response %s", rec.Body)
		}
		return out.Response
	}
	js := func(yamlDoc string) string {
		b, err := yaml.YAMLToJSON([]byte(yamlDoc))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		name, op, object string
		allowed          bool
		message          string
		warnings         int
	}{
		{"invalid", "CREATE", js(brokenVS), false, "VirtualService wh/broken: spec.http[0].redirect: route and redirect cannot both be set", 0},
		{"unknown field", "CREATE", `{"apiVersion":"networking.istio.io/v1","kind":"DestinationRule","metadata":{"name":"r"},"spec":{"host":"r","colour":"red"}}`,
			false, `DestinationRule default/r: spec.colour: unknown field "colour" in DestinationRule`, 0},
		{"valid", "UPDATE", `{"apiVersion":"networking.istio.io/v1","kind":"DestinationRule","metadata":{"name":"r","namespace":"x"},"spec":{"host":"r"}}`, true, "", 0},
		{"not a kind bowline reads", "CREATE", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}`, true, "", 0},
		{"delete", "DELETE", "", true, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := review(t, admissionv1.Operation(tt.op), tt.object)
			if resp.Allowed != tt.allowed {
				t.Fatalf("allowed %v, want %v (%+v)", resp.Allowed, tt.allowed, resp.Result)
			}
			if !tt.allowed && resp.Result.Message != tt.message {
				t.Errorf("message %q, want %q", resp.Result.Message, tt.message)
			}
			if len(resp.Warnings) != tt.warnings {
				t.Errorf("warnings %v", resp.Warnings)
			}
		})
	}
	t.Run("not an AdmissionReview", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodPost, kube.ValidatePath, strings.NewReader("{"))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusBadRequest || !strings.HasPrefix(rec.Body.String(), "decode AdmissionReview: ") {
			t.Errorf("status %d body %q", rec.Code, rec.Body)
		}
	})
}

package inject

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"gomodules.xyz/jsonpatch/v2"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WebhookPath is where the API server sends pods (Istio's path).
const WebhookPath = "/inject"

// maxReviewBytes bounds an AdmissionReview body (the API server's own limit
// for an object is 3 MiB; a review carries it once or twice).
const maxReviewBytes = 8 << 20

// Webhook is the mutating admission webhook: AdmissionReview v1 in, the
// review with a JSONPatch that injects the sidecar out. Mount it at
// WebhookPath on the webhook's TLS server.
type Webhook struct {
	// Config is the injection config; Image is required.
	Config Config
	// Logger receives one line per decision; nil discards.
	Logger *slog.Logger
	// NamespaceLabels, when set, returns a namespace's labels so the handler
	// applies Selected itself, behind the API server's selectors (which do
	// the same when the webhook configuration is Istio's). Nil trusts the
	// selectors.
	NamespaceLabels func(namespace string) (map[string]string, bool)
	// Mesh, when set, returns the current MeshConfig (the istio ConfigMap
	// as discovery last read it), which replaces Config.Mesh for each
	// review, so a changed defaultConfig applies to the next pod.
	Mesh func() *meshv1alpha1.MeshConfig
}

var _ http.Handler = (*Webhook)(nil)

// ServeHTTP answers one AdmissionReview. Transport problems (method, content
// type, an unreadable review) are HTTP errors; a pod the injector refuses
// (an invalid annotation) is a review that denies it with the reason, which
// the API server shows to the user.
func (wh *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "use POST with an AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		http.Error(w, fmt.Sprintf("content type %q: want application/json", ct), http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxReviewBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("admission review larger than %d bytes", maxReviewBytes), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read admission review: "+err.Error(), http.StatusBadRequest)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		http.Error(w, "decode admission review: "+err.Error(), http.StatusBadRequest)
		return
	}
	if review.Request == nil {
		http.Error(w, "admission review has no request", http.StatusBadRequest)
		return
	}
	if review.APIVersion != admissionv1.SchemeGroupVersion.String() || review.Kind != "AdmissionReview" {
		http.Error(w, fmt.Sprintf("admission review is %s %s: want admission.k8s.io/v1 AdmissionReview", review.APIVersion, review.Kind), http.StatusBadRequest)
		return
	}
	resp := wh.Review(review.Request)
	resp.UID = review.Request.UID
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp}
	b, err := json.Marshal(out)
	if err != nil {
		http.Error(w, "encode admission review: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// Review decides one admission request: allowed without a patch when the pod
// is not to be injected, allowed with the injecting JSONPatch, or denied with
// the reason injection failed.
func (wh *Webhook) Review(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	log := wh.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	deny := func(err error) *admissionv1.AdmissionResponse {
		log.Info("injection refused", slog.String("namespace", req.Namespace), slog.String("name", req.Name), slog.String("error", err.Error()))
		return &admissionv1.AdmissionResponse{Result: &metav1.Status{Status: metav1.StatusFailure, Message: err.Error(), Reason: metav1.StatusReasonBadRequest, Code: http.StatusBadRequest}}
	}
	if req.Kind.Kind != "Pod" || req.Kind.Group != "" {
		return deny(fmt.Errorf("the sidecar injector takes pods, got %s %s", req.Kind.Group, req.Kind.Kind))
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return deny(fmt.Errorf("decode pod: %w", err))
	}
	if pod.Namespace == "" {
		pod.Namespace = req.Namespace
	}
	name := pod.Namespace + "/" + podName(&pod)
	if wh.NamespaceLabels != nil {
		if labels, ok := wh.NamespaceLabels(pod.Namespace); ok && !Selected(wh.Config.Revision, labels, pod.Labels) {
			log.Debug("injection skipped", slog.String("pod", name), slog.String("reason", "not selected"))
			return &admissionv1.AdmissionResponse{Allowed: true}
		}
	}
	if ok, why := Required(&pod, pod.Namespace); !ok {
		log.Debug("injection skipped", slog.String("pod", name), slog.String("reason", why))
		return &admissionv1.AdmissionResponse{Allowed: true}
	}
	cfg := wh.Config
	if wh.Mesh != nil {
		cfg.Mesh = wh.Mesh()
	}
	injected, err := Pod(cfg, &pod, OwnerOf(&pod))
	if err != nil {
		return deny(fmt.Errorf("pod %s: %w", name, err))
	}
	patch, err := Patch(req.Object.Raw, injected)
	if err != nil {
		return deny(fmt.Errorf("pod %s: %w", name, err))
	}
	log.Info("sidecar injected", slog.String("pod", name))
	pt := admissionv1.PatchTypeJSONPatch
	return &admissionv1.AdmissionResponse{Allowed: true, Patch: patch, PatchType: &pt}
}

// Patch is the RFC 6902 JSONPatch that turns the pod JSON original into
// injected.
func Patch(original []byte, injected *corev1.Pod) ([]byte, error) {
	after, err := json.Marshal(injected)
	if err != nil {
		return nil, fmt.Errorf("encode injected pod: %w", err)
	}
	ops, err := jsonpatch.CreatePatch(original, after)
	if err != nil {
		return nil, fmt.Errorf("create patch: %w", err)
	}
	b, err := json.Marshal(ops)
	if err != nil {
		return nil, fmt.Errorf("encode patch: %w", err)
	}
	return b, nil
}

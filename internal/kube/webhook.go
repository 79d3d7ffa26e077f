package kube

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/kube/inject"
)

// Webhook defaults, Istio's.
const (
	// DefaultWebhookAddress is where discovery serves its webhooks (the
	// Service maps port 443 to it).
	DefaultWebhookAddress = ":15017"
	// ValidatePath is the validation webhook's path.
	ValidatePath = "/validate"
	// InjectPath is the sidecar injector's path (Istio's).
	InjectPath = inject.WebhookPath
	// maxReviewBytes bounds an AdmissionReview body (the API server's
	// request limit is 3 MiB of object).
	maxReviewBytes = 8 << 20
)

// ValidationHandler answers the API server's AdmissionReview (v1) requests
// for Istio objects with what `bowline validate` would say: the object is
// decoded with the same strict schema check and validated by validate; an
// object with errors is denied with their messages, warnings are returned
// as admission warnings (kubectl prints them). Kinds Bowline does not read
// and deletions are allowed.
type ValidationHandler struct {
	validate config.Validator
	log      *slog.Logger
}

var _ http.Handler = (*ValidationHandler)(nil)

// NewValidationHandler returns the handler. validate is validation.Objects in discovery.
func NewValidationHandler(validate config.Validator, log *slog.Logger) *ValidationHandler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ValidationHandler{validate: validate, log: log}
}

func (h *ValidationHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "use POST with an AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		http.Error(w, fmt.Sprintf("content type %q: want application/json", ct), http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReviewBytes+1))
	if err != nil {
		http.Error(w, "read request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > maxReviewBytes {
		http.Error(w, "AdmissionReview too large", http.StatusRequestEntityTooLarge)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		http.Error(w, "decode AdmissionReview: "+err.Error(), http.StatusBadRequest)
		return
	}
	if review.Request == nil {
		http.Error(w, "AdmissionReview has no request", http.StatusBadRequest)
		return
	}
	resp := h.review(review.Request)
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp}
	if out.APIVersion == "" {
		out.APIVersion, out.Kind = "admission.k8s.io/v1", "AdmissionReview"
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// review decides one admission request.
func (h *ValidationHandler) review(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	if req.Operation == admissionv1.Delete || len(req.Object.Raw) == 0 {
		return resp
	}
	res := config.Parse("", req.Object.Raw, config.ParseOptions{Namespace: req.Namespace})
	problems := res.Problems
	if h.validate != nil {
		_, vp := h.validate(res.Objects)
		problems = append(problems, vp...)
	}
	var errs []string
	for _, p := range problems {
		if p.Severity == config.SeverityError {
			errs = append(errs, p.String())
		} else {
			resp.Warnings = append(resp.Warnings, p.String())
		}
	}
	if len(errs) > 0 {
		resp.Allowed = false
		resp.Result = &metav1.Status{Status: metav1.StatusFailure, Reason: metav1.StatusReasonBadRequest,
			Code: http.StatusBadRequest, Message: strings.Join(errs, "; ")}
		h.log.Debug("admission denied", slog.String(attrKind, req.Kind.Kind), slog.String(attrNamespace, req.Namespace),
			slog.String(attrName, req.Name), slog.String(attrError, resp.Result.Message))
	}
	return resp
}

// WebhookServer serves the webhooks over HTTPS.
type WebhookServer struct {
	addr    string
	tls     *tls.Config
	handler http.Handler
	log     *slog.Logger
	ready   chan struct{}
	bound   net.Addr
}

// NewWebhookServer returns a server of handler on addr (HOST:PORT) with the
// serving certificate getCert gives. It starts nothing.
func NewWebhookServer(addr string, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), handler http.Handler, log *slog.Logger) *WebhookServer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &WebhookServer{addr: addr, tls: &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: getCert}, handler: handler, log: log, ready: make(chan struct{})}
}

// Addr returns the bound address once Run listens, or nil if ctx ends first.
func (s *WebhookServer) Addr(ctx context.Context) net.Addr {
	select {
	case <-s.ready:
		return s.bound
	case <-ctx.Done():
		return nil
	}
}

// Run serves until ctx ends.
func (s *WebhookServer) Run(ctx context.Context) error {
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listen webhook: %w", err)
	}
	s.bound = l.Addr()
	close(s.ready)
	s.log.Info("webhook serving", slog.String("address", s.bound.String()))
	hs := &http.Server{Handler: s.handler, TLSConfig: s.tls, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- hs.ServeTLS(l, "", "") }()
	select {
	case err := <-done:
		return fmt.Errorf("serve webhook: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve webhook: %w", err)
	}
	return nil
}

// WebhookMux routes the webhook paths to their handlers — ValidatePath to
// validate, InjectPath to inject (the sidecar injector; not served when
// nil) — and /ready (200 when ready reports true, else 503) for the pod's
// readiness probe.
func WebhookMux(validate, inject http.Handler, ready func() bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(ValidatePath, validate)
	if inject != nil {
		mux.Handle(InjectPath, inject)
	}
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		if ready != nil && !ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	return mux
}

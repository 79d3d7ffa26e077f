package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/bowline-mesh/bowline/internal/ca"
)

// CAAudience is the audience of the projected service account tokens
// workloads present to the CA, Istio's.
const CAAudience = "istio-ca"

// serviceAccountPrefix starts the user name of a service account token.
const serviceAccountPrefix = "system:serviceaccount:"

// TokenReviewer is the CA's Authenticator on Kubernetes: the caller sends
// its pod's projected service account token ("authorization: Bearer
// <token>", audience istio-ca) and the API server's TokenReview says
// whose it is. Only tokens of service accounts, valid for the audience,
// are accepted; the identity is that service account.
type TokenReviewer struct {
	client    kubernetes.Interface
	audiences []string
	log       *slog.Logger
}

var _ ca.Authenticator = (*TokenReviewer)(nil)

// NewTokenReviewer returns an authenticator asking client's API server.
// audiences default to CAAudience.
func NewTokenReviewer(client kubernetes.Interface, log *slog.Logger, audiences ...string) *TokenReviewer {
	if len(audiences) == 0 {
		audiences = []string{CAAudience}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &TokenReviewer{client: client, audiences: audiences, log: log}
}

// Authenticate implements ca.Authenticator.
func (t *TokenReviewer) Authenticate(ctx context.Context) (ca.Identity, error) {
	tok, err := ca.BearerToken(ctx)
	if err != nil {
		return ca.Identity{}, err
	}
	review, err := t.client.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: tok, Audiences: t.audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		t.log.Info("token review failed", slog.String(attrError, err.Error()))
		return ca.Identity{}, errors.New("token review unavailable")
	}
	st := review.Status
	if !st.Authenticated {
		reason := st.Error
		if reason == "" {
			reason = "not authenticated"
		}
		return ca.Identity{}, fmt.Errorf("token rejected by the API server: %s", reason)
	}
	if !slices.ContainsFunc(st.Audiences, func(a string) bool { return slices.Contains(t.audiences, a) }) {
		return ca.Identity{}, fmt.Errorf("token is not for audience %s", strings.Join(t.audiences, ", "))
	}
	rest, ok := strings.CutPrefix(st.User.Username, serviceAccountPrefix)
	ns, sa, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || ns == "" || sa == "" {
		return ca.Identity{}, fmt.Errorf("token of %q is not a service account token", st.User.Username)
	}
	id := ca.Identity{Namespace: ns, ServiceAccount: sa}
	if err := id.Validate(); err != nil {
		return ca.Identity{}, err
	}
	return id, nil
}

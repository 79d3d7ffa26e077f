package ca

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Identity is a workload identity: a Kubernetes-style service account in a
// namespace. The CA turns it into the SPIFFE ID
// spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>.
type Identity struct {
	// Namespace of the workload.
	Namespace string
	// ServiceAccount the workload runs as.
	ServiceAccount string
}

// String renders the identity as namespace/service-account.
func (i Identity) String() string { return i.Namespace + "/" + i.ServiceAccount }

// Validate checks that both parts are non-empty valid SPIFFE path segments.
func (i Identity) Validate() error {
	if i.Namespace == "" {
		return errors.New("identity: namespace is empty")
	}
	if i.ServiceAccount == "" {
		return errors.New("identity: service account is empty")
	}
	if err := spiffeid.ValidatePathSegment(i.Namespace); err != nil {
		return fmt.Errorf("identity: namespace %q: %w", i.Namespace, err)
	}
	if err := spiffeid.ValidatePathSegment(i.ServiceAccount); err != nil {
		return fmt.Errorf("identity: service account %q: %w", i.ServiceAccount, err)
	}
	return nil
}

// SPIFFEID returns spiffe://<td>/ns/<namespace>/sa/<service-account>.
func (i Identity) SPIFFEID(td spiffeid.TrustDomain) (spiffeid.ID, error) {
	if err := i.Validate(); err != nil {
		return spiffeid.ID{}, err
	}
	return spiffeid.FromSegments(td, "ns", i.Namespace, "sa", i.ServiceAccount)
}

// IdentityFromID parses a SPIFFE ID of the form spiffe://td/ns/NS/sa/SA.
func IdentityFromID(id spiffeid.ID) (Identity, error) {
	seg := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	if len(seg) != 4 || seg[0] != "ns" || seg[2] != "sa" || seg[1] == "" || seg[3] == "" {
		return Identity{}, fmt.Errorf("spiffe id %s is not of the form spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>", id)
	}
	return Identity{Namespace: seg[1], ServiceAccount: seg[3]}, nil
}

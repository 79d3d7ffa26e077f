package ca

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"sync"

	"google.golang.org/grpc/metadata"
)

// Authenticator establishes who is calling the CA. CreateCertificate signs only
// for the identity it returns; an error becomes gRPC Unauthenticated.
// Implementations must be safe for concurrent use.
type Authenticator interface {
	// Authenticate returns the caller's identity from the gRPC request context
	// (metadata, peer). Its error text is sent to the caller: it must not
	// reveal secrets.
	Authenticate(ctx context.Context) (Identity, error)
}

var _ Authenticator = (*Tokens)(nil)

// Tokens is the local-mode Authenticator: bootstrap tokens minted per
// workload identity (by `bowline up`) and sent by the sidecar as gRPC metadata
// "authorization: Bearer <token>". Only SHA-256 hashes of the tokens are kept,
// in memory.
type Tokens struct {
	mu     sync.RWMutex
	byHash map[[sha256.Size]byte]Identity
}

// NewTokens returns an empty token store.
func NewTokens() *Tokens {
	return &Tokens{byHash: map[[sha256.Size]byte]Identity{}}
}

// Mint creates a random 256-bit token that authenticates as namespace/sa and
// returns it; it is not stored in clear. The identity is checked when a
// certificate is requested.
func (t *Tokens) Mint(namespace, serviceAccount string) string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	t.mu.Lock()
	t.byHash[sha256.Sum256([]byte(tok))] = Identity{Namespace: namespace, ServiceAccount: serviceAccount}
	t.mu.Unlock()
	return tok
}

// Revoke forgets token; later requests with it are refused.
func (t *Tokens) Revoke(token string) {
	t.mu.Lock()
	delete(t.byHash, sha256.Sum256([]byte(token)))
	t.mu.Unlock()
}

// Authenticate implements Authenticator: it reads the bearer token from the
// "authorization" metadata and returns the identity it was minted for.
func (t *Tokens) Authenticate(ctx context.Context) (Identity, error) {
	tok, err := BearerToken(ctx)
	if err != nil {
		return Identity{}, err
	}
	t.mu.RLock()
	id, ok := t.byHash[sha256.Sum256([]byte(tok))]
	t.mu.RUnlock()
	if !ok {
		return Identity{}, errors.New("unknown bearer token")
	}
	return id, nil
}

// BearerToken extracts the token of the single "authorization: Bearer <token>"
// metadata entry of an incoming gRPC request.
func BearerToken(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return "", errors.New("no authorization metadata: send \"authorization: Bearer <token>\"")
	}
	if len(vals) > 1 {
		return "", errors.New("more than one authorization metadata entry")
	}
	scheme, tok, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", errors.New("authorization metadata is not of the form \"Bearer <token>\"")
	}
	return strings.TrimSpace(tok), nil
}

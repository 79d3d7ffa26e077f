package ratelimit

import (
	"sync"
	"time"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// bucket is a token bucket refilled lazily: tokens_per_fill every
// fill_interval since the last fill, up to max_tokens.
type bucket struct {
	cfg xdsconfig.TokenBucket

	mu       sync.Mutex
	tokens   uint32
	lastFill time.Time
}

func newBucket(cfg xdsconfig.TokenBucket, now time.Time) *bucket {
	return &bucket{cfg: cfg, tokens: cfg.MaxTokens, lastFill: now}
}

// refill must be called with mu held.
func (b *bucket) refill(now time.Time) {
	if n := now.Sub(b.lastFill) / b.cfg.FillInterval; n > 0 {
		add := uint64(n) * uint64(b.cfg.TokensPerFill)
		b.tokens = uint32(min(uint64(b.tokens)+add, uint64(b.cfg.MaxTokens)))
		b.lastFill = b.lastFill.Add(n * b.cfg.FillInterval)
	}
}

// state is a bucket's content after a decision.
type state struct {
	limit, remaining uint32
	reset            time.Duration
}

// peek reports whether a token is there, without taking it.
func (b *bucket) peek(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	return b.tokens > 0
}

// take takes a token if there is one.
func (b *bucket) take(now time.Time) (bool, state) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	ok := b.tokens > 0
	if ok {
		b.tokens--
	}
	return ok, state{limit: b.cfg.MaxTokens, remaining: b.tokens, reset: b.cfg.FillInterval - now.Sub(b.lastFill)}
}

package ratelimit

import (
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// The per-request cost of finding a request's limiter, from all cores: For
// (a lock every request shares, what the filter did before limiters were
// installed per snapshot) against the installed map a snapshot holds.
func benchLookup(b *testing.B, installed bool) {
	cfg := &xdsconfig.LocalRateLimit{Key: "sample", AlwaysConsumeDefault: true,
		Bucket: &xdsconfig.TokenBucket{MaxTokens: 100, TokensPerFill: 100, FillInterval: time.Minute}}
	ls := NewLimiters(nil)
	byCfg := ls.Install([]*xdsconfig.LocalRateLimit{cfg})
	lookup := func(ls *Limiters, c *xdsconfig.LocalRateLimit) *Local { return ls.For(c) }
	if installed {
		lookup = func(_ *Limiters, c *xdsconfig.LocalRateLimit) *Local { return byCfg[c] }
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if lookup(ls, cfg) == nil {
				b.Fatal("no limiter")
			}
		}
	})
}

func BenchmarkLookupLocked(b *testing.B)    { benchLookup(b, false) }
func BenchmarkLookupInstalled(b *testing.B) { benchLookup(b, true) }

package ratelimit

import (
	"slices"
	"sync"
	"time"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// Descriptor is one rate limit descriptor: its entries, in order.
type Descriptor []xdsconfig.DescriptorEntry

// Decision is a local rate limiter's answer for one request.
type Decision struct {
	// Limited: no token was left.
	Limited bool
	// Limit, Remaining and Reset describe the bucket that decided (for the
	// x-ratelimit-* headers); zero when no bucket applied.
	Limit, Remaining uint32
	Reset            time.Duration
	// Bucketed: some bucket applied (Limit and the rest are set).
	Bucketed bool
}

// Local is the state of one local rate limit config: its default bucket
// and one bucket per descriptor. It is safe for concurrent use.
type Local struct {
	cfg         *xdsconfig.LocalRateLimit
	def         *bucket
	descriptors []*bucket
}

// NewLocal returns a limiter with full buckets.
func NewLocal(cfg *xdsconfig.LocalRateLimit, now time.Time) *Local {
	l := &Local{cfg: cfg}
	if cfg.Bucket != nil {
		l.def = newBucket(*cfg.Bucket, now)
	}
	for _, d := range cfg.Descriptors {
		l.descriptors = append(l.descriptors, newBucket(d.Bucket, now))
	}
	return l
}

// Allow decides one request whose descriptors are descs, as Envoy's local
// rate limit does: every configured descriptor equal to one of descs must
// have a token (then each gives one); the default bucket gives one too when
// no descriptor matched or AlwaysConsumeDefault is set.
func (l *Local) Allow(now time.Time, descs []Descriptor) Decision {
	var matched []*bucket
	for i, d := range l.cfg.Descriptors {
		if slices.ContainsFunc(descs, func(rd Descriptor) bool { return slices.Equal(rd, d.Entries) }) {
			matched = append(matched, l.descriptors[i])
		}
	}
	var dec Decision
	report := func(s state) {
		if !dec.Bucketed || s.remaining < dec.Remaining {
			dec.Limit, dec.Remaining, dec.Reset, dec.Bucketed = s.limit, s.remaining, s.reset, true
		}
	}
	for _, b := range matched {
		if !b.peek(now) {
			_, s := b.take(now)
			report(s)
			dec.Limited = true
			return dec
		}
	}
	for _, b := range matched {
		ok, s := b.take(now)
		report(s)
		if !ok {
			dec.Limited = true
		}
	}
	if l.def != nil && (len(matched) == 0 || l.cfg.AlwaysConsumeDefault) {
		ok, s := l.def.take(now)
		if len(matched) == 0 || !ok {
			report(s)
		}
		if !ok {
			dec.Limited = true
		}
	}
	return dec
}

// Limiters keeps the local limiters of the configs in force, by config
// content (xdsconfig.LocalRateLimit.Key): a config update that leaves a
// rate limit as it was keeps its buckets. Install is called once per config
// snapshot and returns the limiters by config, so requests look theirs up
// in an immutable map instead of taking a lock shared by every request.
type Limiters struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]*Local
}

// NewLimiters returns an empty set; now is the clock (time.Now if nil).
func NewLimiters(now func() time.Time) *Limiters {
	if now == nil {
		now = time.Now
	}
	return &Limiters{now: now, m: map[string]*Local{}}
}

// Now is the limiters' clock.
func (ls *Limiters) Now() time.Time { return ls.now() }

// For returns the limiter of cfg, made on first use (for a config that
// came with no snapshot, whose Install did not see it).
func (ls *Limiters) For(cfg *xdsconfig.LocalRateLimit) *Local {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.forLocked(cfg)
}

func (ls *Limiters) forLocked(cfg *xdsconfig.LocalRateLimit) *Local {
	l, ok := ls.m[cfg.Key]
	if !ok {
		l = NewLocal(cfg, ls.now())
		ls.m[cfg.Key] = l
	}
	return l
}

// Install makes cfgs, the local rate limit configs of a new config
// snapshot, the ones in force: a config whose content had a limiter keeps
// it (and its tokens), the others get full buckets, and the limiters of
// configs that are gone are dropped. Requests still running on an older
// snapshot keep the limiters they hold. It returns each config's limiter.
func (ls *Limiters) Install(cfgs []*xdsconfig.LocalRateLimit) map[*xdsconfig.LocalRateLimit]*Local {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	out := make(map[*xdsconfig.LocalRateLimit]*Local, len(cfgs))
	keep := make(map[string]bool, len(cfgs))
	for _, c := range cfgs {
		out[c] = ls.forLocked(c)
		keep[c.Key] = true
	}
	for k := range ls.m {
		if !keep[k] {
			delete(ls.m, k)
		}
	}
	return out
}

// Len is the number of limiters kept.
func (ls *Limiters) Len() int {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return len(ls.m)
}

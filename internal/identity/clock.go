package identity

import "time"

// Clock is the time source of an Agent; tests inject a fake.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After returns a channel that receives once d has elapsed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// rotateAt is when a certificate received at issuedAt and expiring at
// notAfter should be replaced: when less than ratio±jitter of its lifetime
// remains, as istio-agent does. r in [0,1) draws the jitter.
func rotateAt(issuedAt, notAfter time.Time, ratio, jitter, r float64) time.Time {
	if issuedAt.After(notAfter) {
		return issuedAt
	}
	grace := ratio + jitter*(2*r-1)
	grace = min(max(grace, 0), 1)
	lifetime := notAfter.Sub(issuedAt)
	return notAfter.Add(-time.Duration(grace * float64(lifetime)))
}

// backoff doubles d up to limit.
func backoff(d, limit time.Duration) time.Duration {
	return min(2*d, limit)
}

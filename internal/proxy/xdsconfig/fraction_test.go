package xdsconfig

import (
	"strings"
	"testing"

	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// TestFractionPerMillion: each denominator scales to parts per million,
// capped at all of them without wrapping; unset is all for fault/CORS
// fractions and none for rate limit ones; an unknown denominator is a NACK.
func TestFractionPerMillion(t *testing.T) {
	for _, c := range []struct {
		f    *typev3.FractionalPercent
		want uint32
	}{
		{&typev3.FractionalPercent{Numerator: 25}, 250_000},
		{&typev3.FractionalPercent{Numerator: 25, Denominator: typev3.FractionalPercent_TEN_THOUSAND}, 2_500},
		{&typev3.FractionalPercent{Numerator: 25, Denominator: typev3.FractionalPercent_MILLION}, 25},
		{&typev3.FractionalPercent{Numerator: 429_497}, 1_000_000}, // 429497*10000 wraps uint32 to 2704
		{nil, 1_000_000},
	} {
		if got := fractionPerMillion(c.f); got != c.want {
			t.Errorf("fractionPerMillion(%v) = %d, want %d", c.f, got, c.want)
		}
		if c.f == nil {
			continue
		}
		if got, err := perMillion(c.f, "f"); err != nil || got != c.want {
			t.Errorf("perMillion(%v) = %d, %v; want %d", c.f, got, err, c.want)
		}
	}
	if got, err := perMillion(nil, "f"); err != nil || got != 0 {
		t.Errorf("perMillion(nil) = %d, %v; want 0", got, err)
	}
	if _, err := perMillion(&typev3.FractionalPercent{Numerator: 1, Denominator: 7}, "f"); err == nil || !strings.Contains(err.Error(), "field f.denominator") {
		t.Errorf("perMillion(denominator 7) = %v, want a NACK naming f.denominator", err)
	}
}

package proxy

import (
	"net/http"
	"testing"
)

// TestTraceCarrierKeys: the carrier's constant keys are net/http's canonical
// forms, so what a client sent under any spelling is found and what the
// propagators set replaces it.
func TestTraceCarrierKeys(t *testing.T) {
	for _, k := range []string{"traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid",
		"x-b3-sampled", "x-b3-flags", "x-client-trace-id", "x-envoy-force-trace", "x-other"} {
		if got, want := traceKey(k), http.CanonicalHeaderKey(k); got != want {
			t.Errorf("traceKey(%q) = %q, want %q", k, got, want)
		}
	}
	h := http.Header{}
	h.Set("X-B3-TRACEID", "abc")
	c := traceCarrier(h)
	if got := c.Get("x-b3-traceid"); got != "abc" {
		t.Errorf("Get(x-b3-traceid) = %q, want abc", got)
	}
	c.Set("x-b3-traceid", "def")
	if got := h.Values("X-B3-Traceid"); len(got) != 1 || got[0] != "def" {
		t.Errorf("after Set the header is %q, want [def]", got)
	}
}

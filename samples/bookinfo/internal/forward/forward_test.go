package forward

import (
	"net/http"
	"reflect"
	"testing"
)

func TestHeaders(t *testing.T) {
	tests := []struct {
		name string
		in   http.Header
		want http.Header
	}{
		{
			name: "nothing to forward",
			in:   http.Header{"Accept": {"*/*"}, "X-Forwarded-For": {"10.0.0.1"}},
			want: http.Header{},
		},
		{
			name: "trace context and identity",
			in: http.Header{
				"X-Request-Id":  {"rid-1"},
				"Traceparent":   {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
				"Tracestate":    {"congo=t61rcWkgMzE"},
				"X-B3-Traceid":  {"80f198ee56343ba864fe8b2a57d3eff7"},
				"X-B3-Spanid":   {"e457b5a2e4d86bd1"},
				"X-B3-Sampled":  {"1"},
				"B3":            {"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"},
				"End-User":      {"jason"},
				"User-Agent":    {"curl/8"},
				"Cookie":        {"session=jason"},
				"Content-Type":  {"text/plain"},
				"Authorization": {"Bearer x"},
			},
			want: http.Header{
				"X-Request-Id":  {"rid-1"},
				"Traceparent":   {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
				"Tracestate":    {"congo=t61rcWkgMzE"},
				"X-B3-Traceid":  {"80f198ee56343ba864fe8b2a57d3eff7"},
				"X-B3-Spanid":   {"e457b5a2e4d86bd1"},
				"X-B3-Sampled":  {"1"},
				"B3":            {"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"},
				"End-User":      {"jason"},
				"User-Agent":    {"curl/8"},
				"Cookie":        {"session=jason"},
				"Authorization": {"Bearer x"},
			},
		},
		{
			name: "all values of a repeated header",
			in:   http.Header{"Cookie": {"a=1", "b=2"}},
			want: http.Header{"Cookie": {"a=1", "b=2"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Headers(tt.in)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Headers() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestHeadersDoesNotAlias(t *testing.T) {
	in := http.Header{"X-Request-Id": {"a"}}
	out := Headers(in)
	out["X-Request-Id"][0] = "b"
	if in.Get("x-request-id") != "a" {
		t.Fatal("Headers shares value slices with its input")
	}
}

func TestNamesIncludesRequired(t *testing.T) {
	have := map[string]bool{}
	for _, n := range Names() {
		have[n] = true
	}
	for _, n := range []string{"x-request-id", "traceparent", "tracestate", "x-b3-traceid", "x-b3-spanid",
		"x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "b3", "x-ot-span-context", "end-user", "user-agent", "cookie"} {
		if !have[n] {
			t.Errorf("Names() lacks %q", n)
		}
	}
}

// Package forward owns which request headers the Bookinfo services copy from
// an incoming request to every outbound call: the trace context, the request
// id, and the user identity headers that routing rules match on (end-user,
// cookie). A mesh can join the hops of one request into a trace, and route on
// the user, only if the application forwards them.
//
// It imports only the standard library and none of Bowline's packages.
package forward

import "net/http"

// names is the propagation list. It is the union of what Istio's Bookinfo
// services forward: request id, W3C trace context, B3 (multi and single
// header), Lightstep, Datadog, Google Cloud, gRPC binary trace, SkyWalking,
// and the application/session headers.
var names = [...]string{
	"x-request-id",
	"traceparent",
	"tracestate",
	"x-b3-traceid",
	"x-b3-spanid",
	"x-b3-parentspanid",
	"x-b3-sampled",
	"x-b3-flags",
	"b3",
	"x-ot-span-context",
	"x-datadog-trace-id",
	"x-datadog-parent-id",
	"x-datadog-sampling-priority",
	"x-cloud-trace-context",
	"grpc-trace-bin",
	"sw8",
	"end-user",
	"user-agent",
	"cookie",
	"authorization",
	"jwt",
}

// Names returns the header names that are forwarded, lowercase.
func Names() []string {
	out := make([]string, len(names))
	copy(out, names[:])
	return out
}

// Headers returns a new header set holding every propagated header present in
// in, with all of its values.
func Headers(in http.Header) http.Header {
	out := make(http.Header)
	for _, n := range names {
		if vs := in.Values(n); len(vs) > 0 {
			k := http.CanonicalHeaderKey(n)
			out[k] = append([]string(nil), vs...)
		}
	}
	return out
}

package dashboard

import "strings"

// flagMeanings are Envoy's response flags as they appear in Istio's
// response_flags label, with what each says about the request.
var flagMeanings = map[string]string{
	"-":     "no flag: the request got its response",
	"UH":    "no healthy upstream host in the cluster",
	"UF":    "upstream connection failure",
	"UO":    "upstream overflow (circuit breaking)",
	"NR":    "no route configured for the request",
	"URX":   "upstream retry limit exceeded",
	"NC":    "no cluster found for the route's upstream",
	"DT":    "request or connection exceeded max duration",
	"DC":    "downstream connection terminated",
	"LH":    "local service failed its health check",
	"UT":    "upstream request timeout",
	"LR":    "connection reset locally",
	"UR":    "upstream reset the connection",
	"UC":    "upstream connection terminated",
	"DI":    "delay injected (fault injection)",
	"FI":    "fault injected: aborted by a VirtualService fault",
	"RL":    "rate limited locally",
	"UAEX":  "denied by the external authorization service",
	"RLSE":  "rate limit service error",
	"IH":    "request header failed strict validation",
	"SI":    "stream idle timeout",
	"DPE":   "downstream protocol error",
	"UPE":   "upstream protocol error",
	"UMSDR": "upstream max stream duration reached",
	"OM":    "overload manager terminated the request",
	"DF":    "DNS resolution failed",
	"NFCF":  "no filter config found",
}

// explainFlags says what each flag of a response_flags value (one flag or
// several joined by ',') means.
func explainFlags(flags string) string {
	var out []string
	for f := range strings.SplitSeq(flags, ",") {
		if m, ok := flagMeanings[f]; ok {
			out = append(out, f+": "+m)
		} else {
			out = append(out, f+": (flag not known to Bowline)")
		}
	}
	return strings.Join(out, "; ")
}

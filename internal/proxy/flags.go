package proxy

import "strings"

// flags is a set of Envoy response flags.
type flags uint32

// Envoy response flags the proxy sets.
const (
	flagUH   flags = 1 << iota // no healthy upstream
	flagUT                     // upstream request timeout
	flagUF                     // upstream connection failure
	flagUC                     // upstream connection termination
	flagUO                     // upstream overflow (circuit breaking)
	flagNR                     // no route
	flagDI                     // fault delay injected
	flagFI                     // fault abort injected
	flagDC                     // downstream connection termination
	flagURX                    // upstream retry limit exceeded
	flagNC                     // no cluster
	flagDPE                    // downstream protocol error
	flagUAEX                   // refused by the external authorization service
	flagRL                     // rate limited (local or global)
	flagRLSE                   // rate limit service error
)

var flagNames = [...]string{"UH", "UT", "UF", "UC", "UO", "NR", "DI", "FI", "DC", "URX", "NC", "DPE", "UAEX", "RL", "RLSE"}

// String renders the flags as Envoy does ("-" for none, else comma-separated).
func (f flags) String() string {
	switch f {
	case 0:
		return "-"
	case flagNR:
		return "NR"
	case flagUH:
		return "UH"
	case flagUF:
		return "UF"
	}
	var b strings.Builder
	for i, n := range flagNames {
		if f&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(n)
		}
	}
	return b.String()
}

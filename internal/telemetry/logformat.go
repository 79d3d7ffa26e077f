package telemetry

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// FormatPart is a literal or one command operator, %OP(ARG):MAX%.
type FormatPart struct {
	Literal string
	// Op is the command operator (START_TIME, REQ, RESPONSE_CODE, ...); "" for a literal.
	Op string
	// Header and Alt are REQ/RESP's header and fallback (REQ(X-ENVOY-ORIGINAL-PATH?:PATH)).
	Header, Alt string
	// Max truncates the value (":N"); 0 keeps it whole.
	Max int
}

// LogOperators are the command operators Bowline's access logs render.
var LogOperators = []string{"START_TIME", "REQ", "RESP", "RESPONSE_CODE", "RESPONSE_FLAGS", "RESPONSE_CODE_DETAILS",
	"BYTES_RECEIVED", "BYTES_SENT", "DURATION", "PROTOCOL", "UPSTREAM_HOST", "UPSTREAM_CLUSTER",
	"UPSTREAM_TRANSPORT_FAILURE_REASON", "DOWNSTREAM_REMOTE_ADDRESS", "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT",
	"DOWNSTREAM_LOCAL_ADDRESS", "DOWNSTREAM_PEER_URI_SAN", "REQUESTED_SERVER_NAME", "CONNECTION_TERMINATION_DETAILS",
	"ROUTE_NAME", "HOSTNAME"}

// ParseLogFormat splits an Envoy access log format string (text, or one
// JSON value) into literals and the command operators Bowline renders;
// an operator it does not render is an error naming it.
func ParseLogFormat(s string) ([]FormatPart, error) {
	var out []FormatPart
	for s != "" {
		i := strings.IndexByte(s, '%')
		if i < 0 {
			out = append(out, FormatPart{Literal: s})
			break
		}
		if i > 0 {
			out = append(out, FormatPart{Literal: s[:i]})
		}
		rest := s[i+1:]
		j := strings.IndexByte(rest, '%')
		if j < 0 {
			return nil, fmt.Errorf("unterminated command operator at %q", s[i:])
		}
		p, err := parseOperator(rest[:j])
		if err != nil {
			return nil, err
		}
		out = append(out, p)
		s = rest[j+1:]
	}
	return out, nil
}

func parseOperator(tok string) (FormatPart, error) {
	p := FormatPart{}
	name, arg := tok, ""
	if k := strings.IndexByte(tok, '('); k >= 0 {
		end := strings.LastIndexByte(tok, ')')
		if end < k {
			return p, fmt.Errorf("command operator %%%s%%: unclosed '('", tok)
		}
		name, arg = tok[:k], tok[k+1:end]
		if tail := tok[end+1:]; tail != "" {
			n, err := strconv.Atoi(strings.TrimPrefix(tail, ":"))
			if !strings.HasPrefix(tail, ":") || err != nil || n <= 0 {
				return p, fmt.Errorf("command operator %%%s%%: %q is not a length (:N)", tok, tail)
			}
			p.Max = n
		}
	}
	if !slices.Contains(LogOperators, name) {
		return p, fmt.Errorf("command operator %%%s%% is not supported (Bowline renders %s)", name, strings.Join(LogOperators, ", "))
	}
	p.Op = name
	switch name {
	case "REQ", "RESP":
		if arg == "" {
			return p, fmt.Errorf("command operator %%%s%% needs a header: %s(NAME)", tok, name)
		}
		p.Header, p.Alt, _ = strings.Cut(arg, "?")
		p.Header, p.Alt = strings.ToLower(p.Header), strings.ToLower(p.Alt)
	case "START_TIME":
		if arg != "" {
			return p, fmt.Errorf("command operator %%%s%%: START_TIME formats are not supported (RFC 3339 with milliseconds, as Envoy's default)", tok)
		}
	default:
		if arg != "" {
			return p, fmt.Errorf("command operator %%%s%% takes no argument", tok)
		}
	}
	return p, nil
}

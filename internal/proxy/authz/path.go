package authz

import (
	"errors"
	"strings"
)

// EscapedSlashes is the HCM's path_with_escaped_slashes_action.
type EscapedSlashes int

// Escaped slash actions (%2F, %2f, %5C, %5c in the path).
const (
	KeepEscapedSlashes   EscapedSlashes = iota // KEEP_UNCHANGED
	RejectEscapedSlashes                       // REJECT_REQUEST: 400
	UnescapeAndRedirect                        // UNESCAPE_AND_REDIRECT: 307 to the unescaped path
	UnescapeAndForward                         // UNESCAPE_AND_FORWARD
)

// PathOptions are the HCM's path handling fields. Bowline's control plane
// sets all of them on inbound listeners (Istio's DECODE_AND_MERGE_SLASHES):
// Normalize, MergeSlashes, UnescapeAndForward.
type PathOptions struct {
	// Normalize is normalize_path: RFC 3986 normalization (dot segments
	// removed, percent-encoded unreserved characters decoded, other escapes'
	// hex digits upper-cased, "\" turned into "/").
	Normalize bool
	// MergeSlashes is merge_slashes: runs of "/" become one.
	MergeSlashes bool
	// EscapedSlashes is path_with_escaped_slashes_action.
	EscapedSlashes EscapedSlashes
}

// ErrEscapedSlash is returned for a path with an escaped slash under
// RejectEscapedSlashes (Envoy answers 400).
var ErrEscapedSlash = errors.New("path contains escaped slashes")

// NormalizePath applies o to a request's :path the way Envoy's HTTP
// connection manager does before any filter or the router sees it: the
// fragment is dropped, the query is kept as is, and the result always starts
// with "/". It is idempotent. redirect is true under UnescapeAndRedirect when
// unescaping changed the path (Envoy answers 307 with the new path).
func NormalizePath(raw string, o PathOptions) (path string, redirect bool, err error) {
	if i := strings.IndexByte(raw, '#'); i >= 0 {
		raw = raw[:i]
	}
	p, query := raw, ""
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		p, query = raw[:i], raw[i:]
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if o.EscapedSlashes != KeepEscapedSlashes && hasEscapedSlash(p) {
		switch o.EscapedSlashes {
		case RejectEscapedSlashes:
			return "", false, ErrEscapedSlash
		case UnescapeAndRedirect:
			redirect = true
		}
		p = unescapeSlashes(p)
	}
	if o.Normalize {
		p = removeDotSegments(strings.ReplaceAll(decodeUnreserved(p), `\`, "/"))
	}
	if o.MergeSlashes {
		p = mergeSlashes(p)
	}
	return p + query, redirect, nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func hasEscapedSlash(p string) bool {
	for i := 0; i+2 < len(p); i++ {
		if p[i] == '%' && (p[i+1] == '2' && (p[i+2] == 'F' || p[i+2] == 'f') || p[i+1] == '5' && (p[i+2] == 'C' || p[i+2] == 'c')) {
			return true
		}
	}
	return false
}

func unescapeSlashes(p string) string {
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) {
			switch {
			case p[i+1] == '2' && (p[i+2] == 'F' || p[i+2] == 'f'):
				b.WriteByte('/')
				i += 2
				continue
			case p[i+1] == '5' && (p[i+2] == 'C' || p[i+2] == 'c'):
				b.WriteByte('\\')
				i += 2
				continue
			}
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// decodeUnreserved decodes %XX of unreserved characters, upper-cases the hex
// of other escapes, and escapes a "%" that starts no valid escape as "%25"
// (so decoding can never form a new escape: the result is stable).
func decodeUnreserved(p string) string {
	if strings.IndexByte(p, '%') < 0 {
		return p
	}
	const hexUpper = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
			b.WriteString("%25")
			continue
		}
		v := unhex(p[i+1])<<4 | unhex(p[i+2])
		if isUnreserved(v) {
			b.WriteByte(v)
		} else {
			b.WriteByte('%')
			b.WriteByte(hexUpper[v>>4])
			b.WriteByte(hexUpper[v&0xf])
		}
		i += 2
	}
	return b.String()
}

// removeDotSegments is RFC 3986 section 5.2.4 on an absolute path: "." and
// ".." segments go, ".." never climbs above the root.
func removeDotSegments(p string) string {
	if !strings.Contains(p, ".") {
		return p
	}
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/")
}

func mergeSlashes(p string) string {
	if !strings.Contains(p, "//") {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && i > 0 && p[i-1] == '/' {
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

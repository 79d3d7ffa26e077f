package validation

import (
	"fmt"
	"maps"
	"math"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"
	typev1beta1 "istio.io/api/type/v1beta1"
	k8svalidation "k8s.io/apimachinery/pkg/util/validation"

	"github.com/bowline-mesh/bowline/internal/config"
)

// Shared rules for every kind: the collector, field paths, hosts, ports,
// labels and selectors, durations, percentages, regexes, header names and
// values, protocols, addresses and exportTo. The rules follow Istio's own
// validation (pkg/config/validation) and the CRD schema's CEL rules.

// fieldErrors collects the problems of one object in the order found.
type fieldErrors struct {
	list []config.FieldError
}

// errorf records an error at path.
func (f *fieldErrors) errorf(path, format string, args ...any) {
	f.list = append(f.list, config.FieldError{Path: path, Reason: fmt.Sprintf(format, args...)})
}

// warnf records a warning at path; the object is still accepted.
func (f *fieldErrors) warnf(path, format string, args ...any) {
	f.list = append(f.list, config.FieldError{Path: path, Reason: fmt.Sprintf(format, args...), Warning: true})
}

// reason records msg at path unless it is empty (helpers return "" for valid input).
func (f *fieldErrors) reason(path, msg string) {
	if msg != "" {
		f.list = append(f.list, config.FieldError{Path: path, Reason: msg})
	}
}

// fieldPath joins a field name to a path: fieldPath("spec", "hosts") is "spec.hosts".
func fieldPath(p, name string) string { return p + "." + name }

// indexPath addresses a list element: indexPath("spec.hosts", 1) is "spec.hosts[1]".
func indexPath(p string, i int) string { return p + "[" + strconv.Itoa(i) + "]" }

// keyPath addresses a map entry: keyPath("spec.labels", "app") is "spec.labels[app]".
func keyPath(p, key string) string { return p + "[" + key + "]" }

// sortedMapKeys returns m's keys in order, so that problems come out deterministically.
func sortedMapKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// --- DNS names and hosts ---------------------------------------------------

// Istio's DNS-1123 label accepts upper case letters too.
var (
	dnsLabelRE         = regexp.MustCompile(`^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$`)
	wildcardDNSLabelRE = regexp.MustCompile(`^(?:\*|(?:\*|\*-)?[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?)$`)
)

const maxDNSLabel = 63

// isDNSLabel reports whether s is a DNS-1123 label (as Istio checks names of
// subsets, ports, gateways and namespaces).
func isDNSLabel(s string) bool { return len(s) <= maxDNSLabel && dnsLabelRE.MatchString(s) }

func isWildcardDNSLabel(s string) bool {
	return len(s) <= maxDNSLabel && wildcardDNSLabelRE.MatchString(s)
}

// isIP reports whether s is an IPv4 or IPv6 address.
func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

func dnsPreconditions(name string) string {
	if name == "" {
		return "must not be empty"
	}
	if len(name) > 255 {
		return fmt.Sprintf("domain name %q is too long (at most 255 characters)", name)
	}
	return ""
}

// dnsLabelsProblem checks the dot-separated labels of domain (a trailing dot is allowed).
func dnsLabelsProblem(whole, domain string) string {
	parts := strings.Split(domain, ".")
	tld := parts[len(parts)-1]
	if _, err := strconv.Atoi(tld); err == nil {
		return fmt.Sprintf("domain name %q is invalid: top level domain %q cannot be all-numeric", whole, tld)
	}
	for i, l := range parts {
		if i == len(parts)-1 && l == "" {
			return ""
		}
		if !isDNSLabel(l) {
			return fmt.Sprintf("domain name %q is invalid: label %q is not a DNS-1123 label", whole, l)
		}
	}
	return ""
}

// fqdnProblem checks a domain name without wildcards; "" when valid.
func fqdnProblem(name string) string {
	if p := dnsPreconditions(name); p != "" {
		return p
	}
	return dnsLabelsProblem(name, name)
}

// wildcardDomainProblem checks a domain name that may have a wildcard as (a
// prefix of) its first label only: "*", "*.example.com", "*-foo.example.com".
func wildcardDomainProblem(name string) string {
	if p := dnsPreconditions(name); p != "" {
		return p
	}
	first, rest, hasRest := strings.Cut(name, ".")
	if !isWildcardDNSLabel(first) {
		if strings.Contains(name, "*") {
			return fmt.Sprintf("domain name %q is invalid: a wildcard is only allowed as the leading character", name)
		}
		return fmt.Sprintf("domain name %q is invalid: label %q is not a DNS-1123 label", name, first)
	}
	if hasRest {
		if strings.Contains(rest, "*") {
			return fmt.Sprintf("domain name %q is invalid: a wildcard is only allowed as the leading character", name)
		}
		return dnsLabelsProblem(name, rest)
	}
	return ""
}

// partialWildcardProblem rejects wildcards other than "*" and a leading "*.".
func partialWildcardProblem(name string) string {
	if strings.Contains(name, "*") && name != "*" && !strings.HasPrefix(name, "*.") {
		return fmt.Sprintf("partial wildcard %q is not allowed", name)
	}
	return ""
}

// hostMatches reports whether two host names overlap: equal, or one is a
// wildcard covering the other.
func hostMatches(a, b string) bool {
	if a == b {
		return true
	}
	aw, bw := strings.HasPrefix(a, "*"), strings.HasPrefix(b, "*")
	switch {
	case aw && bw:
		return strings.HasSuffix(a[1:], b[1:]) || strings.HasSuffix(b[1:], a[1:])
	case aw:
		return strings.HasSuffix(b, a[1:])
	case bw:
		return strings.HasSuffix(a, b[1:])
	}
	return false
}

// hostSubsetOf reports whether every name matched by a is matched by b.
func hostSubsetOf(a, b string) bool {
	if b == "*" {
		return true
	}
	aw, bw := strings.HasPrefix(a, "*"), strings.HasPrefix(b, "*")
	switch {
	case aw && bw:
		return strings.HasSuffix(a[1:], b[1:])
	case aw:
		return false
	case bw:
		return strings.HasSuffix(a, b[1:])
	}
	return a == b
}

// namespaceSlashHostProblems checks the "namespace/dnsName" hosts of
// Sidecar egress listeners and Gateway servers. Gateways also accept a bare
// host (the namespace defaults to "*") and IP addresses.
func namespaceSlashHostProblems(f *fieldErrors, p, h string, gateway bool) {
	ns, name, ok := strings.Cut(h, "/")
	if !ok {
		if gateway {
			hostnamePartProblems(f, p, h, true)
			return
		}
		f.errorf(p, "host %q must be of the form namespace/dnsName", h)
		return
	}
	if ns == "" || name == "" {
		f.errorf(p, "namespace and dnsName of host %q must not be empty", h)
	}
	if ns != "" && ns != "*" && ns != "." && (gateway || ns != "~") && !isDNSLabel(ns) {
		f.errorf(p, "invalid namespace %q in host %q", ns, h)
	}
	if name != "" {
		hostnamePartProblems(f, p, name, gateway)
	}
}

func hostnamePartProblems(f *fieldErrors, p, name string, gateway bool) {
	if name != "*" && !strings.Contains(name, ".") && !(gateway && isIP(name)) {
		f.errorf(p, "short name %q is not allowed, use a fully qualified domain name", name)
		return
	}
	if msg := wildcardDomainProblem(name); msg != "" && !(gateway && isIP(name)) {
		f.errorf(p, "%s", msg)
		return
	}
	f.reason(p, partialWildcardProblem(name))
}

// --- ports, protocols, addresses -------------------------------------------

// portProblem checks a port number is in 1..65535.
func portProblem(n int64) string {
	if n < 1 || n > 65535 {
		return fmt.Sprintf("port number %d must be between 1 and 65535", n)
	}
	return ""
}

// portNameProblem checks a port name is a DNS-1123 label.
func portNameProblem(name string) string {
	if name == "" {
		return "port name must not be empty"
	}
	if !isDNSLabel(name) {
		return fmt.Sprintf("invalid port name %q: must be a DNS-1123 label", name)
	}
	return ""
}

// Protocol is a port protocol as Istio parses it (case-insensitively).
type protocol string

const (
	protoUnsupported protocol = ""
	protoHTTP        protocol = "HTTP"
	protoHTTP2       protocol = "HTTP2"
	protoHTTPProxy   protocol = "HTTP_PROXY"
	protoGRPC        protocol = "GRPC"
	protoGRPCWeb     protocol = "GRPC-Web"
	protoHTTPS       protocol = "HTTPS"
	protoTLS         protocol = "TLS"
	protoTCP         protocol = "TCP"
	protoUDP         protocol = "UDP"
	protoMongo       protocol = "Mongo"
	protoRedis       protocol = "Redis"
	protoMySQL       protocol = "MySQL"
)

var knownProtocols = []protocol{protoHTTP, protoHTTP2, protoHTTPProxy, protoGRPC, protoGRPCWeb, protoHTTPS, protoTLS, protoTCP, protoUDP, protoMongo, protoRedis, protoMySQL}

func parseProtocol(s string) protocol {
	for _, p := range knownProtocols {
		if strings.EqualFold(s, string(p)) {
			return p
		}
	}
	return protoUnsupported
}

func (p protocol) isHTTP() bool {
	switch p {
	case protoHTTP, protoHTTP2, protoHTTPProxy, protoGRPC, protoGRPCWeb:
		return true
	}
	return false
}

func (p protocol) isTLS() bool { return p == protoHTTPS || p == protoTLS }

func (p protocol) isTCP() bool {
	switch p {
	case protoTCP, protoHTTPS, protoTLS, protoMongo, protoRedis, protoMySQL:
		return true
	}
	return false
}

const protocolList = "HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TLS, TCP, UDP, MONGO, REDIS, MYSQL, HTTP_PROXY"

// protocolProblem checks a port protocol; empty means "detect" and is valid.
func protocolProblem(s string) string {
	if s != "" && parseProtocol(s) == protoUnsupported {
		return fmt.Sprintf("unsupported protocol %q (supported: %s)", s, protocolList)
	}
	return ""
}

// unixAddressPrefix marks a Unix domain socket address.
const unixAddressPrefix = "unix://"

// unixAddressProblem checks the path after "unix://": absolute, not a
// directory, or an abstract socket starting with "@".
func unixAddressProblem(addr string) string {
	if addr == "" {
		return "unix domain socket path must not be empty"
	}
	if strings.HasPrefix(addr, "@") {
		return ""
	}
	if !path.IsAbs(addr) || strings.HasSuffix(addr, "/") {
		return fmt.Sprintf("unix domain socket %q must be an absolute path to a file", addr)
	}
	return ""
}

// ipOrCIDRProblem checks an IP address or a CIDR block.
func ipOrCIDRProblem(s string) string {
	if strings.Count(s, "/") == 1 {
		if _, err := netip.ParsePrefix(s); err != nil {
			return fmt.Sprintf("%q is not a valid CIDR block", s)
		}
		return ""
	}
	if !isIP(s) {
		return fmt.Sprintf("%q is not a valid IP address", s)
	}
	return ""
}

// --- labels and selectors --------------------------------------------------

// labelProblems checks that every key and value of labels is a valid Kubernetes label.
func labelProblems(f *fieldErrors, p string, labels map[string]string) {
	for _, k := range sortedMapKeys(labels) {
		kp := keyPath(p, k)
		if errs := k8svalidation.IsQualifiedName(k); len(errs) > 0 {
			f.errorf(kp, "invalid label key %q: %s", k, errs[0])
		}
		if errs := k8svalidation.IsValidLabelValue(labels[k]); len(errs) > 0 {
			f.errorf(kp, "invalid label value %q: %s", labels[k], errs[0])
		}
	}
}

// selectorLabelProblems applies Istio's selector rules: no empty keys and no
// wildcards, on top of Kubernetes label syntax.
func selectorLabelProblems(f *fieldErrors, p string, labels map[string]string) {
	for _, k := range sortedMapKeys(labels) {
		kp := keyPath(p, k)
		v := labels[k]
		if k == "" {
			f.errorf(kp, "empty label key is not supported in a selector")
			continue
		}
		if strings.Contains(k, "*") || strings.Contains(v, "*") {
			f.errorf(kp, "wildcard is not supported in a selector: %q", k+"="+v)
			continue
		}
		if errs := k8svalidation.IsQualifiedName(k); len(errs) > 0 {
			f.errorf(kp, "invalid label key %q: %s", k, errs[0])
		}
		if errs := k8svalidation.IsValidLabelValue(v); len(errs) > 0 {
			f.errorf(kp, "invalid label value %q: %s", v, errs[0])
		}
	}
}

// secCheckLabels checks a workload selector's labels at path (the map field,
// e.g. "spec.selector.matchLabels"): Istio's selector rules (no empty keys,
// no wildcards) on top of Kubernetes label syntax. An empty selector is a
// warning reported at selectorPath.
func secCheckLabels(r *fieldErrors, selectorPath, path string, labels map[string]string, maxLabels int) {
	if len(labels) == 0 {
		r.warnf(selectorPath, "workload selector without labels selects every workload in the namespace")
		return
	}
	if len(labels) > maxLabels {
		r.errorf(path, "at most %d labels are allowed, got %d", maxLabels, len(labels))
	}
	selectorLabelProblems(r, path, labels)
}

// workloadSelectorProblems checks a security/telemetry style selector
// (matchLabels) at path p (e.g. "spec.selector"). Selecting no labels is a
// warning: the resource then applies to every workload in the namespace.
func workloadSelectorProblems(f *fieldErrors, p string, sel *typev1beta1.WorkloadSelector) {
	if sel == nil {
		return
	}
	secCheckLabels(f, p, fieldPath(p, "matchLabels"), sel.GetMatchLabels(), math.MaxInt)
}

// networkingSelectorProblems checks a networking style selector (labels),
// as in Sidecar and ServiceEntry workloadSelector.
func networkingSelectorProblems(f *fieldErrors, p string, sel *networking.WorkloadSelector) {
	if sel == nil {
		return
	}
	secCheckLabels(f, p, fieldPath(p, "labels"), sel.GetLabels(), math.MaxInt)
}

// --- durations, percentages ------------------------------------------------

// durationProblems checks a duration is at least 1ms and a whole number of milliseconds.
func durationProblems(f *fieldErrors, p string, d *durationpb.Duration) {
	if d == nil {
		return
	}
	dur := d.AsDuration()
	if dur < time.Millisecond {
		f.errorf(p, "duration %s must be at least 1ms", dur)
		return
	}
	if dur%time.Millisecond != 0 {
		f.errorf(p, "duration %s must be a whole number of milliseconds", dur)
	}
}

// percentProblem checks an integer percentage.
func percentProblem(v int64) string {
	if v < 0 || v > 100 {
		return fmt.Sprintf("percentage %d must be between 0 and 100", v)
	}
	return ""
}

// fractionalPercentProblem checks a networking.Percent: 0, or 0.0001..100.
func fractionalPercentProblem(pc *networking.Percent) string {
	if pc == nil {
		return ""
	}
	v := pc.GetValue()
	if v < 0 || v > 100 || (v > 0 && v < 0.0001) {
		return fmt.Sprintf("percentage %v must be 0 or between 0.0001 and 100", v)
	}
	return ""
}

// --- regexes, string matches ------------------------------------------------

// maxRegexLength bounds regexes as Istio does: Envoy limits the RE2 program
// size, which is always larger than the length.
const maxRegexLength = 1024

// regexProblem checks an RE2 regex (the dialect Envoy uses) compiles and is not too long.
func regexProblem(re string) string {
	if len(re) > maxRegexLength {
		return fmt.Sprintf("regex is too long (%d characters, at most %d)", len(re), maxRegexLength)
	}
	if _, err := regexp.Compile(re); err != nil {
		return fmt.Sprintf("invalid RE2 regex: %s", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
	return ""
}

// stringMatchProblems checks a StringMatch: a prefix must not be empty
// unless allowEmptyPrefix, a regex must not be empty and must compile.
func stringMatchProblems(f *fieldErrors, p string, sm *networking.StringMatch, allowEmptyPrefix bool) {
	if sm == nil {
		return
	}
	switch m := sm.GetMatchType().(type) {
	case *networking.StringMatch_Prefix:
		if m.Prefix == "" && !allowEmptyPrefix {
			f.errorf(fieldPath(p, "prefix"), "prefix match must not be empty")
		}
	case *networking.StringMatch_Regex:
		if m.Regex == "" {
			f.errorf(fieldPath(p, "regex"), "regex match must not be empty")
			return
		}
		f.reason(fieldPath(p, "regex"), regexProblem(m.Regex))
	}
}

// --- HTTP headers ------------------------------------------------------------

var headerNameRE = regexp.MustCompile(`^[-_A-Za-z0-9]+$`)

// headerNameProblem checks a header name used in a match.
func headerNameProblem(name string) string {
	if name == "" {
		return "header name must not be empty"
	}
	if !headerNameRE.MatchString(name) {
		return fmt.Sprintf("invalid header name %q: only letters, digits, '-' and '_' are allowed", name)
	}
	return ""
}

// headerValueControlRE rejects control characters other than tab.
var headerValueControlRE = regexp.MustCompile("[\x00-\x08\x0A-\x1F\x7F]")

// headerValueProblem checks a header value Envoy will accept, including
// its %VARIABLE% and %VARIABLE(args)% substitutions ("%%" is a literal %).
func headerValueProblem(v string) string {
	if headerValueControlRE.MatchString(v) {
		return fmt.Sprintf("header value %q contains control characters", v)
	}
	const (
		literal = iota
		varName
		expectArray
		expectString
		inString
		expectDelimOrEnd
		expectArgsEnd
		expectVarEnd
	)
	state := literal
	for i := 0; i < len(v); i++ {
		ch := v[i]
		switch state {
		case literal:
			if ch != '%' {
				continue
			}
			if i+1 == len(v) {
				return fmt.Sprintf("header value %q has an unescaped %% (write %%%% for a literal %%)", v)
			}
			if v[i+1] == '%' {
				i++
				continue
			}
			state = varName
		case varName:
			if ch == '%' {
				state = literal
			} else if ch == '(' {
				state = expectArray
			}
		case expectArray:
			if ch == '[' {
				state = expectString
			} else if ch != ' ' {
				state = inString
			}
		case expectDelimOrEnd:
			if ch == ',' {
				state = expectString
			} else if ch == ']' {
				state = expectArgsEnd
			} else if ch != ' ' {
				return fmt.Sprintf("header value %q: expected ',', ']' or a space in variable arguments", v)
			}
		case expectString:
			if ch == '"' {
				state = inString
			} else if ch != ' ' {
				return fmt.Sprintf("header value %q: expected '\"' in variable arguments", v)
			}
		case inString:
			if ch == '\\' {
				if i+1 == len(v) {
					return fmt.Sprintf("header value %q: unterminated backslash in variable arguments", v)
				}
				i++
			} else if ch == ')' {
				state = expectVarEnd
			} else if ch == '"' {
				state = expectDelimOrEnd
			}
		case expectArgsEnd:
			if ch == ')' {
				state = expectVarEnd
			} else if ch != ' ' {
				return fmt.Sprintf("header value %q: expected ')' after variable arguments", v)
			}
		case expectVarEnd:
			if ch == '%' {
				state = literal
			} else if ch != ' ' {
				return fmt.Sprintf("header value %q: expected '%%' to close the variable", v)
			}
		}
	}
	if state != literal {
		return fmt.Sprintf("header value %q has an unterminated %%VARIABLE%% expression", v)
	}
	return ""
}

// --- exportTo ---------------------------------------------------------------

// exportToProblems checks exportTo: "." (this namespace), "*" (all), a
// namespace name, and "~" (none) for ServiceEntry; no duplicates, "*" and
// "~" alone.
func exportToProblems(f *fieldErrors, p, namespace string, exportTo []string, serviceEntry bool) {
	seen := map[string]bool{}
	for i, e := range exportTo {
		ep := indexPath(p, i)
		key := e
		if e == "." {
			key = namespace
		}
		if seen[key] {
			if key != e {
				f.errorf(ep, "duplicate exportTo entry: \".\" and the current namespace %q", namespace)
			} else {
				f.errorf(ep, "duplicate exportTo entry %q", e)
			}
			continue
		}
		switch {
		case e == "*", e == ".":
		case e == "~" && serviceEntry:
		case e == "~":
			f.errorf(ep, "exportTo \"~\" is only allowed for ServiceEntry")
			continue
		case !isDNSLabel(e):
			f.errorf(ep, "invalid exportTo value %q: must be \".\", \"*\" or a namespace name", e)
			continue
		}
		seen[key] = true
	}
	if len(exportTo) > 1 {
		if seen["*"] {
			f.errorf(p, "\"*\" (public) cannot be combined with other exportTo values")
		}
		if seen["~"] {
			f.errorf(p, "\"~\" (no one) cannot be combined with other exportTo values")
		}
	}
}

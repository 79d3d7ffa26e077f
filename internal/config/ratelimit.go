package config

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// RateLimitSpec is the spec of Bowline's kind bowline.dev/v1alpha1
// RateLimit: a first-class rate limit that Bowline turns into the Envoy
// filters an Istio EnvoyFilter would patch in (docs/adr/0006,
// docs/policy.md "RateLimit"). It attaches like Istio's workload policies:
// the workloads of its namespace its selector matches (all of them without
// one; every workload of the mesh from the root namespace), or the Gateway
// API gateways its targetRefs name. On a sidecar it limits inbound
// requests; on a gateway the requests the gateway takes.
type RateLimitSpec struct {
	// Selector picks the workloads (sidecars and gateways) by labels.
	Selector *RateLimitSelector `json:"selector,omitempty"`
	// TargetRefs name Gateway API gateways (group
	// gateway.networking.k8s.io, kind Gateway) of the RateLimit's
	// namespace; exclusive with Selector.
	TargetRefs []RateLimitTargetRef `json:"targetRefs,omitempty"`
	// Ports narrow the limit to these ports: for a sidecar the workload
	// port its inbound listener serves (a container port), for a gateway
	// the Gateway server port. All ports when empty.
	Ports []uint32 `json:"ports,omitempty"`
	// Local is a token bucket in each proxy (Envoy's local_ratelimit).
	Local *LocalRateLimitSpec `json:"local,omitempty"`
	// Global asks a rate limit service (Envoy's ratelimit filter and the
	// envoy.service.ratelimit.v3 API).
	Global *GlobalRateLimitSpec `json:"global,omitempty"`
}

// RateLimitSelector selects workloads by labels, as Istio's
// WorkloadSelector.
type RateLimitSelector struct {
	// MatchLabels must all be labels of the workload.
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
}

// RateLimitTargetRef names a Gateway API gateway, as an Istio policy's
// targetRefs entry.
type RateLimitTargetRef struct {
	// Group is gateway.networking.k8s.io.
	Group string `json:"group,omitempty"`
	// Kind is Gateway.
	Kind string `json:"kind"`
	// Name is the gateway's name.
	Name string `json:"name"`
}

// TokenBucket is Envoy's token bucket: it holds at most MaxTokens, gains
// TokensPerFill every FillInterval, and a request takes one token.
type TokenBucket struct {
	// MaxTokens is the bucket's size (and what it starts with).
	MaxTokens uint32 `json:"maxTokens"`
	// TokensPerFill is added every FillInterval; MaxTokens when zero.
	TokensPerFill uint32 `json:"tokensPerFill,omitempty"`
	// FillInterval is a duration ("60s", "500ms"), at least 50ms as Envoy requires.
	FillInterval string `json:"fillInterval"`
}

// LocalRateLimitSpec is a local rate limit: requests draw from TokenBucket;
// a request a rule matches also from the rule's bucket; a request that
// finds a bucket empty answers 429 with response flag RL.
type LocalRateLimitSpec struct {
	// TokenBucket is the bucket every request draws from.
	TokenBucket *TokenBucket `json:"tokenBucket"`
	// Rules give the requests they match a bucket of their own.
	Rules []LocalRateLimitRule `json:"rules,omitempty"`
	// ResponseHeaders are set on a limited answer.
	ResponseHeaders map[string]string `json:"responseHeaders,omitempty"`
	// RateLimitHeaders adds x-ratelimit-limit, x-ratelimit-remaining and
	// x-ratelimit-reset to every answer a bucket counted.
	RateLimitHeaders bool `json:"rateLimitHeaders,omitempty"`
}

// LocalRateLimitRule is a bucket for the requests Match matches.
type LocalRateLimitRule struct {
	// Name names the rule (the descriptor value header_match=NAME).
	Name string `json:"name"`
	// Match is what a request must be.
	Match *RequestMatch `json:"match"`
	// TokenBucket is the rule's bucket.
	TokenBucket *TokenBucket `json:"tokenBucket"`
}

// RequestMatch matches a request: every condition set must hold.
type RequestMatch struct {
	// Path matches the request's :path (which includes any query, as
	// Envoy's header match of :path).
	Path *StringMatch `json:"path,omitempty"`
	// Method is the request method, exactly.
	Method string `json:"method,omitempty"`
	// Headers match request headers by name (lowercase).
	Headers map[string]StringMatch `json:"headers,omitempty"`
}

// StringMatch is exactly one of Exact, Prefix and Regex (RE2, the whole
// value), as Istio's StringMatch.
type StringMatch struct {
	Exact  string `json:"exact,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	Regex  string `json:"regex,omitempty"`
}

// GlobalRateLimitSpec is a global rate limit: each request's descriptors
// go to the rate limit service, whose OVER_LIMIT answers 429 (flag RL).
type GlobalRateLimitSpec struct {
	// Service is the rate limit service's host (a service of the mesh or
	// a ServiceEntry host), reached through its outbound cluster.
	Service string `json:"service"`
	// Port is the service's port.
	Port uint32 `json:"port"`
	// Domain is the rate limit domain sent with each request.
	Domain string `json:"domain"`
	// FailureMode is what a request gets when the service cannot answer:
	// Allow (the default, as Envoy) lets it through, Deny answers 500 with
	// response flag RLSE.
	FailureMode string `json:"failureMode,omitempty"`
	// Timeout bounds a service call (a duration; Envoy's 20ms when empty).
	Timeout string `json:"timeout,omitempty"`
	// Descriptors are sent for each request; a descriptor whose entries
	// cannot all be made (a header absent, a match failing) is not sent.
	Descriptors []RateLimitDescriptor `json:"descriptors"`
}

// RateLimitDescriptor is one descriptor, its entries in order.
type RateLimitDescriptor struct {
	Entries []RateLimitEntry `json:"entries"`
}

// RateLimitEntry is one descriptor entry: Key and a value from exactly
// one of Header, RemoteAddress, Value and Match.
type RateLimitEntry struct {
	// Key is the entry's key (remote_address for RemoteAddress, which
	// Envoy fixes; header_match for Match when empty).
	Key string `json:"key,omitempty"`
	// Header takes the value of this request header.
	Header string `json:"header,omitempty"`
	// RemoteAddress takes the client's address.
	RemoteAddress bool `json:"remoteAddress,omitempty"`
	// Value is a constant value (Envoy's generic_key); with Match, the
	// value when Match matches.
	Value string `json:"value,omitempty"`
	// Match makes the entry Value when the request matches.
	Match *RequestMatch `json:"match,omitempty"`
}

// Failure modes of a global rate limit.
const (
	FailureModeAllow = "Allow"
	FailureModeDeny  = "Deny"
)

// MinFillInterval is the shortest fill interval Envoy takes.
const MinFillInterval = 50 * time.Millisecond

var (
	headerName = regexp.MustCompile(`^:?[a-z0-9!#$%&'*+\-.^_|~` + "`" + `]+$`)
	ruleName   = regexp.MustCompile(`^[A-Za-z0-9_.\-]+$`)
)

// decodeRateLimit decodes a RateLimit spec strictly (unknown fields are
// errors, as for the Gateway API kinds) and checks it.
func decodeRateLimit(data []byte) (any, error) {
	v, err := decodeGatewayAPI[RateLimitSpec](data)
	if err != nil {
		return nil, err
	}
	spec := v.(*RateLimitSpec)
	if errs := spec.check(); len(errs) > 0 {
		return nil, errs
	}
	return spec, nil
}

func (s *RateLimitSpec) check() FieldErrors {
	var errs FieldErrors
	add := func(path, format string, args ...any) {
		errs = append(errs, FieldError{Path: path, Reason: fmt.Sprintf(format, args...)})
	}
	if s.Local == nil && s.Global == nil {
		add("spec", "one of local and global is required")
	}
	if s.Selector != nil && len(s.TargetRefs) > 0 {
		add("spec.targetRefs", "selector and targetRefs are exclusive")
	}
	if s.Selector != nil {
		for _, k := range sortedKeys(s.Selector.MatchLabels) {
			p := "spec.selector.matchLabels[" + k + "]"
			for _, msg := range validation.IsQualifiedName(k) {
				add(p, "invalid label key: %s", msg)
			}
			for _, msg := range validation.IsValidLabelValue(s.Selector.MatchLabels[k]) {
				add(p, "invalid label value: %s", msg)
			}
		}
	}
	for i, r := range s.TargetRefs {
		p := fmt.Sprintf("spec.targetRefs[%d]", i)
		if r.Group != "" && r.Group != GroupGatewayAPI {
			add(p+".group", "must be %s", GroupGatewayAPI)
		}
		if r.Kind != "Gateway" {
			add(p+".kind", "must be Gateway (a rate limit attaches to gateways by targetRefs)")
		}
		if r.Name == "" {
			add(p+".name", "required")
		}
	}
	seen := map[uint32]bool{}
	for i, port := range s.Ports {
		p := fmt.Sprintf("spec.ports[%d]", i)
		if port == 0 || port > 65535 {
			add(p, "must be between 1 and 65535")
		} else if seen[port] {
			add(p, "duplicate port %d", port)
		}
		seen[port] = true
	}
	if l := s.Local; l != nil {
		if l.TokenBucket == nil {
			add("spec.local.tokenBucket", "required: the bucket every request draws from")
		} else {
			checkBucket("spec.local.tokenBucket", l.TokenBucket, add)
		}
		names := map[string]bool{}
		for i, r := range l.Rules {
			p := fmt.Sprintf("spec.local.rules[%d]", i)
			switch {
			case r.Name == "":
				add(p+".name", "required")
			case !ruleName.MatchString(r.Name):
				add(p+".name", "%q: only letters, digits, '_', '-' and '.'", r.Name)
			case names[r.Name]:
				add(p+".name", "duplicate rule name %q", r.Name)
			}
			names[r.Name] = true
			if r.Match == nil {
				add(p+".match", "required: a rule limits the requests it matches (the local tokenBucket limits all)")
			} else {
				checkMatch(p+".match", r.Match, add)
			}
			if r.TokenBucket == nil {
				add(p+".tokenBucket", "required")
			} else {
				checkBucket(p+".tokenBucket", r.TokenBucket, add)
			}
		}
		for _, k := range sortedKeys(l.ResponseHeaders) {
			if !headerName.MatchString(k) || strings.HasPrefix(k, ":") {
				add("spec.local.responseHeaders["+k+"]", "not a lowercase header name")
			} else if strings.Contains(l.ResponseHeaders[k], "%") {
				add("spec.local.responseHeaders["+k+"]", "command operators (%%...%%) are not supported")
			}
		}
	}
	if g := s.Global; g != nil {
		if g.Service == "" {
			add("spec.global.service", "required: the rate limit service's host")
		} else {
			for _, msg := range validation.IsDNS1123Subdomain(g.Service) {
				add("spec.global.service", "%s", msg)
			}
		}
		if g.Port == 0 || g.Port > 65535 {
			add("spec.global.port", "must be between 1 and 65535")
		}
		if g.Domain == "" {
			add("spec.global.domain", "required")
		}
		switch g.FailureMode {
		case "", FailureModeAllow, FailureModeDeny:
		default:
			add("spec.global.failureMode", "%q: must be Allow or Deny", g.FailureMode)
		}
		if g.Timeout != "" {
			if d, err := time.ParseDuration(g.Timeout); err != nil || d <= 0 {
				add("spec.global.timeout", "%q: not a positive duration", g.Timeout)
			}
		}
		if len(g.Descriptors) == 0 {
			add("spec.global.descriptors", "at least one descriptor is required (a request without descriptors is not sent to the service)")
		}
		for i, d := range g.Descriptors {
			p := fmt.Sprintf("spec.global.descriptors[%d]", i)
			if len(d.Entries) == 0 {
				add(p+".entries", "at least one entry is required")
			}
			for j, e := range d.Entries {
				checkEntry(fmt.Sprintf("%s.entries[%d]", p, j), e, add)
			}
		}
	}
	return errs
}

func checkBucket(path string, b *TokenBucket, add func(string, string, ...any)) {
	if b.MaxTokens == 0 {
		add(path+".maxTokens", "must be above 0")
	}
	if b.TokensPerFill > b.MaxTokens && b.MaxTokens > 0 {
		add(path+".tokensPerFill", "%d is above maxTokens %d (the bucket holds at most maxTokens)", b.TokensPerFill, b.MaxTokens)
	}
	if b.FillInterval == "" {
		add(path+".fillInterval", "required")
	} else if d, err := time.ParseDuration(b.FillInterval); err != nil {
		add(path+".fillInterval", "%q: not a duration", b.FillInterval)
	} else if d < MinFillInterval {
		add(path+".fillInterval", "%s is below Envoy's minimum of %s", b.FillInterval, MinFillInterval)
	}
}

func checkMatch(path string, m *RequestMatch, add func(string, string, ...any)) {
	if m.Path == nil && m.Method == "" && len(m.Headers) == 0 {
		add(path, "set at least one of path, method and headers")
	}
	if m.Path != nil {
		checkStringMatch(path+".path", *m.Path, add)
	}
	if m.Method != "" && strings.ToUpper(m.Method) != m.Method {
		add(path+".method", "%q: methods are uppercase", m.Method)
	}
	for _, k := range sortedKeys(m.Headers) {
		p := path + ".headers[" + k + "]"
		if !headerName.MatchString(k) {
			add(p, "not a lowercase header name")
		}
		checkStringMatch(p, m.Headers[k], add)
	}
}

func checkStringMatch(path string, m StringMatch, add func(string, string, ...any)) {
	n := 0
	for _, v := range []string{m.Exact, m.Prefix, m.Regex} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		add(path, "set exactly one of exact, prefix and regex")
		return
	}
	if m.Regex != "" {
		if _, err := regexp.Compile(m.Regex); err != nil {
			add(path+".regex", "%v", err)
		}
	}
}

func checkEntry(path string, e RateLimitEntry, add func(string, string, ...any)) {
	n := 0
	if e.Header != "" {
		n++
	}
	if e.RemoteAddress {
		n++
	}
	if e.Match != nil {
		n++
	}
	if e.Value != "" && e.Match == nil {
		n++
	}
	if n != 1 {
		add(path, "set exactly one of header, remoteAddress, value and match")
		return
	}
	switch {
	case e.Header != "":
		if e.Key == "" {
			add(path+".key", "required with header")
		}
		if !headerName.MatchString(e.Header) {
			add(path+".header", "%q: not a lowercase header name", e.Header)
		}
	case e.RemoteAddress:
		if e.Key != "" && e.Key != "remote_address" {
			add(path+".key", "must be empty or remote_address (Envoy fixes the key of remoteAddress)")
		}
	case e.Match != nil:
		if e.Value == "" {
			add(path+".value", "required with match: the entry's value when the request matches")
		}
		checkMatch(path+".match", e.Match, add)
	}
}

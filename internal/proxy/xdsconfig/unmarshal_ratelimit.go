package xdsconfig

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	lrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Type URLs of the rate limit filters.
const (
	typeLocalRateLimit = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
	typeRateLimit      = "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit"
)

// defaultRateLimitTimeout is Envoy's timeout of a rate limit service call.
const defaultRateLimitTimeout = 20 * time.Millisecond

func unmarshalLocalRateLimitAny(a *anypb.Any, path string) (*LocalRateLimit, error) {
	c := &lrlv3.LocalRateLimit{}
	if err := a.UnmarshalTo(c); err != nil {
		return nil, fmt.Errorf("field %s: %w", path, err)
	}
	return unmarshalLocalRateLimit(c, path)
}

func unmarshalLocalRateLimit(c *lrlv3.LocalRateLimit, path string) (*LocalRateLimit, error) {
	if err := checkFields(c, path, "stat_prefix", "status", "token_bucket", "filter_enabled", "filter_enforced",
		"request_headers_to_add_when_not_enforced", "response_headers_to_add", "descriptors", "stage",
		"enable_x_ratelimit_headers", "always_consume_default_token_bucket", "rate_limits"); err != nil {
		return nil, err
	}
	if c.GetStatPrefix() == "" {
		return nil, fmt.Errorf("field %s.stat_prefix: required", path)
	}
	if c.GetStage() > 10 {
		return nil, fmt.Errorf("field %s.stage: %d is above 10", path, c.GetStage())
	}
	out := &LocalRateLimit{StatPrefix: c.GetStatPrefix(), Stage: c.GetStage(), Status: 429,
		XRateLimitHeaders:    c.GetEnableXRatelimitHeaders() == commonrlv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03,
		AlwaysConsumeDefault: c.AlwaysConsumeDefaultTokenBucket == nil || c.GetAlwaysConsumeDefaultTokenBucket().GetValue()}
	var err error
	if s := c.GetStatus(); s != nil {
		if out.Status, err = httpStatus(s, path+".status"); err != nil {
			return nil, err
		}
	}
	if tb := c.GetTokenBucket(); tb != nil {
		b, err := tokenBucket(tb, path+".token_bucket")
		if err != nil {
			return nil, err
		}
		out.Bucket = &b
	}
	if out.EnabledPerMillion, err = runtimeFraction(c.GetFilterEnabled(), path+".filter_enabled"); err != nil {
		return nil, err
	}
	if out.EnforcedPerMillion, err = runtimeFraction(c.GetFilterEnforced(), path+".filter_enforced"); err != nil {
		return nil, err
	}
	if out.ResponseHeaders, err = convertHeaderValues(c.GetResponseHeadersToAdd(), path+".response_headers_to_add"); err != nil {
		return nil, err
	}
	if out.RequestHeadersNotEnforced, err = convertHeaderValues(c.GetRequestHeadersToAddWhenNotEnforced(),
		path+".request_headers_to_add_when_not_enforced"); err != nil {
		return nil, err
	}
	for i, d := range c.GetDescriptors() {
		p := fmt.Sprintf("%s.descriptors[%d]", path, i)
		if err := checkFields(d, p, "entries", "token_bucket"); err != nil {
			return nil, err
		}
		if len(d.GetEntries()) == 0 {
			return nil, fmt.Errorf("field %s.entries: at least one entry is required", p)
		}
		ld := LocalDescriptor{}
		for j, e := range d.GetEntries() {
			if e.GetKey() == "" {
				return nil, fmt.Errorf("field %s.entries[%d].key: required", p, j)
			}
			ld.Entries = append(ld.Entries, DescriptorEntry{Key: e.GetKey(), Value: e.GetValue()})
		}
		if d.GetTokenBucket() == nil {
			return nil, fmt.Errorf("field %s.token_bucket: required", p)
		}
		if ld.Bucket, err = tokenBucket(d.GetTokenBucket(), p+".token_bucket"); err != nil {
			return nil, err
		}
		out.Descriptors = append(out.Descriptors, ld)
	}
	if out.RateLimits, err = unmarshalRateLimits(c.GetRateLimits(), path+".rate_limits"); err != nil {
		return nil, err
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("field %s: %w", path, err)
	}
	sum := sha256.Sum256(b)
	out.Key = hex.EncodeToString(sum[:16])
	return out, nil
}

func unmarshalRateLimitAny(a *anypb.Any, path string) (*RateLimitFilter, error) {
	c := &rlv3.RateLimit{}
	if err := a.UnmarshalTo(c); err != nil {
		return nil, fmt.Errorf("field %s: %w", path, err)
	}
	if err := checkFields(c, path, "domain", "stage", "request_type", "timeout", "failure_mode_deny", "rate_limit_service",
		"enable_x_ratelimit_headers", "disable_x_envoy_ratelimited_header", "rate_limited_status", "status_on_error", "stat_prefix"); err != nil {
		return nil, err
	}
	if c.GetDomain() == "" {
		return nil, fmt.Errorf("field %s.domain: required", path)
	}
	if rt := c.GetRequestType(); rt != "" && rt != "both" {
		return nil, fmt.Errorf("field %s.request_type: %q unsupported (only both)", path, rt)
	}
	out := &RateLimitFilter{Domain: c.GetDomain(), Stage: c.GetStage(), FailureModeDeny: c.GetFailureModeDeny(),
		Timeout: defaultRateLimitTimeout, Status: 429, StatusOnError: 500,
		XRateLimitHeaders:   c.GetEnableXRatelimitHeaders() == rlv3.RateLimit_DRAFT_VERSION_03,
		NoRateLimitedHeader: c.GetDisableXEnvoyRatelimitedHeader()}
	if t := c.GetTimeout(); t != nil {
		out.Timeout = t.AsDuration()
	}
	var err error
	if s := c.GetRateLimitedStatus(); s != nil {
		if out.Status, err = httpStatus(s, path+".rate_limited_status"); err != nil {
			return nil, err
		}
	}
	if s := c.GetStatusOnError(); s != nil {
		if out.StatusOnError, err = httpStatus(s, path+".status_on_error"); err != nil {
			return nil, err
		}
	}
	svc := c.GetRateLimitService()
	sp := path + ".rate_limit_service"
	if svc == nil {
		return nil, fmt.Errorf("field %s: required", sp)
	}
	if err := checkFields(svc, sp, "grpc_service", "transport_api_version"); err != nil {
		return nil, err
	}
	if v := svc.GetTransportApiVersion(); v != corev3.ApiVersion_V3 {
		return nil, fmt.Errorf("field %s.transport_api_version: %v unsupported (only V3)", sp, v)
	}
	gs := svc.GetGrpcService()
	if err := checkFields(gs, sp+".grpc_service", "envoy_grpc", "timeout"); err != nil {
		return nil, err
	}
	eg := gs.GetEnvoyGrpc()
	if eg == nil || eg.GetClusterName() == "" {
		return nil, fmt.Errorf("field %s.grpc_service.envoy_grpc.cluster_name: required", sp)
	}
	if err := checkFields(eg, sp+".grpc_service.envoy_grpc", "cluster_name", "authority"); err != nil {
		return nil, err
	}
	out.Cluster, out.Authority = eg.GetClusterName(), eg.GetAuthority()
	if out.Authority == "" {
		out.Authority = out.Cluster
	}
	return out, nil
}

func httpStatus(s *typev3.HttpStatus, path string) (int, error) {
	code := int(s.GetCode())
	if code < 200 || code > 599 {
		return 0, fmt.Errorf("field %s.code: %d is not an HTTP status", path, code)
	}
	return code, nil
}

func tokenBucket(tb *typev3.TokenBucket, path string) (TokenBucket, error) {
	if err := checkFields(tb, path, "max_tokens", "tokens_per_fill", "fill_interval"); err != nil {
		return TokenBucket{}, err
	}
	b := TokenBucket{MaxTokens: tb.GetMaxTokens(), TokensPerFill: 1, FillInterval: tb.GetFillInterval().AsDuration()}
	if tb.TokensPerFill != nil {
		b.TokensPerFill = tb.GetTokensPerFill().GetValue()
	}
	switch {
	case b.MaxTokens == 0:
		return TokenBucket{}, fmt.Errorf("field %s.max_tokens: must be above 0", path)
	case b.TokensPerFill == 0:
		return TokenBucket{}, fmt.Errorf("field %s.tokens_per_fill: must be above 0", path)
	case b.FillInterval <= 0:
		return TokenBucket{}, fmt.Errorf("field %s.fill_interval: must be above 0", path)
	}
	return b, nil
}

// runtimeFraction is a RuntimeFractionalPercent's default value per million
// (0 when unset, as Envoy's local rate limit reads an absent fraction).
func runtimeFraction(f *corev3.RuntimeFractionalPercent, path string) (uint32, error) {
	if f == nil {
		return 0, nil
	}
	if err := checkFields(f, path, "default_value", "runtime_key"); err != nil {
		return 0, err
	}
	return perMillion(f.GetDefaultValue(), path+".default_value")
}

// perMillion is fractionPerMillion of a checked fraction, 0 when unset.
func perMillion(p *typev3.FractionalPercent, path string) (uint32, error) {
	if p == nil {
		return 0, nil
	}
	if _, ok := typev3.FractionalPercent_DenominatorType_name[int32(p.GetDenominator())]; !ok {
		return 0, fmt.Errorf("field %s.denominator: %v unsupported", path, p.GetDenominator())
	}
	return fractionPerMillion(p), nil
}

// unmarshalRateLimits checks the rate_limits of a route action, virtual
// host or local rate limit filter.
func unmarshalRateLimits(rls []*routev3.RateLimit, path string) ([]RateLimitPolicy, error) {
	var out []RateLimitPolicy
	for i, rl := range rls {
		p := fmt.Sprintf("%s[%d]", path, i)
		if err := checkFields(rl, p, "stage", "actions"); err != nil {
			return nil, err
		}
		if rl.GetStage().GetValue() > 10 {
			return nil, fmt.Errorf("field %s.stage: %d is above 10", p, rl.GetStage().GetValue())
		}
		if len(rl.GetActions()) == 0 {
			return nil, fmt.Errorf("field %s.actions: at least one action is required", p)
		}
		pol := RateLimitPolicy{Stage: rl.GetStage().GetValue()}
		for j, a := range rl.GetActions() {
			act, err := unmarshalRateLimitAction(a, fmt.Sprintf("%s.actions[%d]", p, j))
			if err != nil {
				return nil, err
			}
			pol.Actions = append(pol.Actions, act)
		}
		out = append(out, pol)
	}
	return out, nil
}

func unmarshalRateLimitAction(a *routev3.RateLimit_Action, path string) (RateLimitAction, error) {
	switch s := a.GetActionSpecifier().(type) {
	case *routev3.RateLimit_Action_SourceCluster_:
		return RateLimitAction{Kind: ActionSourceCluster, Key: "source_cluster"}, nil
	case *routev3.RateLimit_Action_DestinationCluster_:
		return RateLimitAction{Kind: ActionDestinationCluster, Key: "destination_cluster"}, nil
	case *routev3.RateLimit_Action_RemoteAddress_:
		return RateLimitAction{Kind: ActionRemoteAddress, Key: "remote_address"}, nil
	case *routev3.RateLimit_Action_RequestHeaders_:
		p := path + ".request_headers"
		if err := checkFields(s.RequestHeaders, p, "header_name", "descriptor_key", "skip_if_absent"); err != nil {
			return RateLimitAction{}, err
		}
		if s.RequestHeaders.GetHeaderName() == "" || s.RequestHeaders.GetDescriptorKey() == "" {
			return RateLimitAction{}, fmt.Errorf("field %s: header_name and descriptor_key are required", p)
		}
		return RateLimitAction{Kind: ActionRequestHeaders, Key: s.RequestHeaders.GetDescriptorKey(),
			Header: strings.ToLower(s.RequestHeaders.GetHeaderName()), SkipIfAbsent: s.RequestHeaders.GetSkipIfAbsent()}, nil
	case *routev3.RateLimit_Action_GenericKey_:
		p := path + ".generic_key"
		if err := checkFields(s.GenericKey, p, "descriptor_value", "descriptor_key"); err != nil {
			return RateLimitAction{}, err
		}
		if s.GenericKey.GetDescriptorValue() == "" {
			return RateLimitAction{}, fmt.Errorf("field %s.descriptor_value: required", p)
		}
		key := s.GenericKey.GetDescriptorKey()
		if key == "" {
			key = "generic_key"
		}
		return RateLimitAction{Kind: ActionGenericKey, Key: key, Value: s.GenericKey.GetDescriptorValue()}, nil
	case *routev3.RateLimit_Action_HeaderValueMatch_:
		p := path + ".header_value_match"
		h := s.HeaderValueMatch
		if err := checkFields(h, p, "descriptor_key", "descriptor_value", "expect_match", "headers"); err != nil {
			return RateLimitAction{}, err
		}
		if h.GetDescriptorValue() == "" {
			return RateLimitAction{}, fmt.Errorf("field %s.descriptor_value: required", p)
		}
		if len(h.GetHeaders()) == 0 {
			return RateLimitAction{}, fmt.Errorf("field %s.headers: at least one header is required", p)
		}
		key := h.GetDescriptorKey()
		if key == "" {
			key = "header_match"
		}
		act := RateLimitAction{Kind: ActionHeaderValueMatch, Key: key, Value: h.GetDescriptorValue(),
			ExpectMatch: h.ExpectMatch == nil || h.GetExpectMatch().GetValue()}
		for i, hm := range h.GetHeaders() {
			m, err := unmarshalHeaderMatcher(hm, fmt.Sprintf("%s.headers[%d]", p, i))
			if err != nil {
				return RateLimitAction{}, err
			}
			act.Headers = append(act.Headers, *m)
		}
		return act, nil
	case nil:
		return RateLimitAction{}, fmt.Errorf("field %s: an action is required", path)
	default:
		m := a.ProtoReflect()
		fd := m.WhichOneof(m.Descriptor().Oneofs().ByName("action_specifier"))
		return RateLimitAction{}, fmt.Errorf("field %s.%s: rate limit action unsupported", path, fd.Name())
	}
}

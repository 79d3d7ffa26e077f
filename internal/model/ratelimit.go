package model

import (
	"fmt"
	"maps"
	"slices"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitconfv3 "github.com/envoyproxy/go-control-plane/envoy/config/ratelimit/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	lrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
	istiotype "istio.io/api/type/v1beta1"

	"github.com/bowline-mesh/bowline/internal/config"
)

// Envoy's names of the rate limit filters and the connection manager.
const (
	filterLocalRateLimit = "envoy.filters.http.local_ratelimit"
	filterRateLimit      = "envoy.filters.http.ratelimit"
	filterRouter         = "envoy.filters.http.router"
	filterHCM            = "envoy.filters.network.http_connection_manager"
)

// RateLimitEnvoyFilter is the EnvoyFilter a RateLimit (Bowline's kind,
// config.RateLimitSpec) stands for (docs/adr/0006): what a user would write
// to get the same limit through Istio's API. Build applies it through the
// same patch engine as any EnvoyFilter, so both ways give one xDS and one
// filter in the proxy:
//
//   - local: envoy.filters.http.local_ratelimit first in the HTTP filters
//     (INSERT_BEFORE without a filter to insert at), carrying the bucket,
//     the rules as its own rate_limits (header_value_match) and descriptors,
//     enabled and enforced for every request, as Istio's "Enabling Rate
//     Limits using Envoy" task writes it;
//   - global: envoy.filters.http.ratelimit before the router, calling the
//     service's outbound cluster, and the descriptors as rate_limits merged
//     into the virtual hosts, as the same task writes them.
//
// The patches are SIDECAR_INBOUND and GATEWAY for a selector (each applies
// to its kind of proxy), GATEWAY for targetRefs; ports narrow listeners and
// route configurations by portNumber. namespace resolves a short service
// name, domain is the cluster domain.
func RateLimitEnvoyFilter(namespace, domain string, spec *config.RateLimitSpec) (*networking.EnvoyFilter, error) {
	ef := &networking.EnvoyFilter{}
	if spec.Selector != nil && len(spec.Selector.MatchLabels) > 0 {
		ef.WorkloadSelector = &networking.WorkloadSelector{Labels: spec.Selector.MatchLabels}
	}
	ctxs := []networking.EnvoyFilter_PatchContext{networking.EnvoyFilter_SIDECAR_INBOUND, networking.EnvoyFilter_GATEWAY}
	for _, r := range spec.TargetRefs {
		group := r.Group
		if group == "" {
			group = config.GroupGatewayAPI
		}
		ef.TargetRefs = append(ef.TargetRefs, &istiotype.PolicyTargetReference{Group: group, Kind: r.Kind, Name: r.Name})
	}
	if len(ef.TargetRefs) > 0 {
		ctxs = ctxs[1:]
	}
	ports := spec.Ports
	if len(ports) == 0 {
		ports = []uint32{0} // no port match
	}
	var local, global *structpb.Struct
	var vhost *structpb.Struct
	var err error
	if l := spec.Local; l != nil {
		if local, err = filterStruct(filterLocalRateLimit, localRateLimit(l)); err != nil {
			return nil, err
		}
	}
	if g := spec.Global; g != nil {
		if global, err = filterStruct(filterRateLimit, globalRateLimit(g, namespace, domain)); err != nil {
			return nil, err
		}
		if vhost, err = structOf(&routev3.VirtualHost{RateLimits: globalActions(g)}); err != nil {
			return nil, err
		}
	}
	for _, ctx := range ctxs {
		for _, port := range ports {
			if local != nil {
				ef.ConfigPatches = append(ef.ConfigPatches, &networking.EnvoyFilter_EnvoyConfigObjectPatch{
					ApplyTo: networking.EnvoyFilter_HTTP_FILTER,
					Match:   listenerMatch(ctx, port, ""),
					Patch:   &networking.EnvoyFilter_Patch{Operation: networking.EnvoyFilter_Patch_INSERT_BEFORE, Value: local},
				})
			}
			if global != nil {
				ef.ConfigPatches = append(ef.ConfigPatches, &networking.EnvoyFilter_EnvoyConfigObjectPatch{
					ApplyTo: networking.EnvoyFilter_HTTP_FILTER,
					Match:   listenerMatch(ctx, port, filterRouter),
					Patch:   &networking.EnvoyFilter_Patch{Operation: networking.EnvoyFilter_Patch_INSERT_BEFORE, Value: global},
				}, &networking.EnvoyFilter_EnvoyConfigObjectPatch{
					ApplyTo: networking.EnvoyFilter_VIRTUAL_HOST,
					Match: &networking.EnvoyFilter_EnvoyConfigObjectMatch{Context: ctx,
						ObjectTypes: &networking.EnvoyFilter_EnvoyConfigObjectMatch_RouteConfiguration{RouteConfiguration: &networking.EnvoyFilter_RouteConfigurationMatch{
							PortNumber: port,
							Vhost:      &networking.EnvoyFilter_RouteConfigurationMatch_VirtualHostMatch{Route: &networking.EnvoyFilter_RouteConfigurationMatch_RouteMatch{Action: networking.EnvoyFilter_RouteConfigurationMatch_RouteMatch_ANY}},
						}}},
					Patch: &networking.EnvoyFilter_Patch{Operation: networking.EnvoyFilter_Patch_MERGE, Value: vhost},
				})
			}
		}
	}
	return ef, nil
}

// listenerMatch matches the HTTP connection managers of ctx (on port when
// not 0), at subFilter when set.
func listenerMatch(ctx networking.EnvoyFilter_PatchContext, port uint32, subFilter string) *networking.EnvoyFilter_EnvoyConfigObjectMatch {
	f := &networking.EnvoyFilter_ListenerMatch_FilterMatch{Name: filterHCM}
	if subFilter != "" {
		f.SubFilter = &networking.EnvoyFilter_ListenerMatch_SubFilterMatch{Name: subFilter}
	}
	return &networking.EnvoyFilter_EnvoyConfigObjectMatch{Context: ctx,
		ObjectTypes: &networking.EnvoyFilter_EnvoyConfigObjectMatch_Listener{Listener: &networking.EnvoyFilter_ListenerMatch{
			PortNumber:  port,
			FilterChain: &networking.EnvoyFilter_ListenerMatch_FilterChainMatch{Filter: f},
		}}}
}

func localRateLimit(l *config.LocalRateLimitSpec) *lrlv3.LocalRateLimit {
	all := &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}}
	c := &lrlv3.LocalRateLimit{
		StatPrefix:     "http_local_rate_limiter",
		TokenBucket:    tokenBucket(l.TokenBucket),
		FilterEnabled:  proto.Clone(all).(*corev3.RuntimeFractionalPercent),
		FilterEnforced: all,
	}
	c.FilterEnabled.RuntimeKey = "local_rate_limit_enabled"
	c.FilterEnforced.RuntimeKey = "local_rate_limit_enforced"
	if l.RateLimitHeaders {
		c.EnableXRatelimitHeaders = commonrlv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03
	}
	for _, k := range slices.Sorted(maps.Keys(l.ResponseHeaders)) {
		c.ResponseHeadersToAdd = append(c.ResponseHeadersToAdd, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, Value: l.ResponseHeaders[k]},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	for _, r := range l.Rules {
		c.RateLimits = append(c.RateLimits, &routev3.RateLimit{Actions: []*routev3.RateLimit_Action{{
			ActionSpecifier: &routev3.RateLimit_Action_HeaderValueMatch_{HeaderValueMatch: &routev3.RateLimit_Action_HeaderValueMatch{
				DescriptorValue: r.Name, Headers: headerMatchers(r.Match)}},
		}}})
		c.Descriptors = append(c.Descriptors, &commonrlv3.LocalRateLimitDescriptor{
			Entries:     []*commonrlv3.RateLimitDescriptor_Entry{{Key: "header_match", Value: r.Name}},
			TokenBucket: tokenBucket(r.TokenBucket),
		})
	}
	return c
}

func tokenBucket(b *config.TokenBucket) *typev3.TokenBucket {
	d, _ := time.ParseDuration(b.FillInterval) // checked by config
	fill := b.TokensPerFill
	if fill == 0 {
		fill = b.MaxTokens
	}
	return &typev3.TokenBucket{MaxTokens: b.MaxTokens, TokensPerFill: wrapperspb.UInt32(fill), FillInterval: durationpb.New(d)}
}

// headerMatchers are Envoy's header matchers for m, in a fixed order:
// :path, :method, then headers by name.
func headerMatchers(m *config.RequestMatch) []*routev3.HeaderMatcher {
	var out []*routev3.HeaderMatcher
	if m.Path != nil {
		out = append(out, stringHeader(":path", *m.Path))
	}
	if m.Method != "" {
		out = append(out, stringHeader(":method", config.StringMatch{Exact: m.Method}))
	}
	for _, k := range slices.Sorted(maps.Keys(m.Headers)) {
		out = append(out, stringHeader(k, m.Headers[k]))
	}
	return out
}

func stringHeader(name string, m config.StringMatch) *routev3.HeaderMatcher {
	sm := &matcherv3.StringMatcher{}
	switch {
	case m.Exact != "":
		sm.MatchPattern = &matcherv3.StringMatcher_Exact{Exact: m.Exact}
	case m.Prefix != "":
		sm.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: m.Prefix}
	default:
		sm.MatchPattern = &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: m.Regex}}
	}
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: sm}}
}

func globalRateLimit(g *config.GlobalRateLimitSpec, namespace, domain string) *rlv3.RateLimit {
	host := ResolveHost(g.Service, namespace, domain)
	c := &rlv3.RateLimit{
		Domain:          g.Domain,
		FailureModeDeny: g.FailureMode == config.FailureModeDeny,
		RateLimitService: &ratelimitconfv3.RateLimitServiceConfig{
			GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
				ClusterName: fmt.Sprintf("outbound|%d||%s", g.Port, host), Authority: host}}},
			TransportApiVersion: corev3.ApiVersion_V3,
		},
	}
	if g.Timeout != "" {
		d, _ := time.ParseDuration(g.Timeout) // checked by config
		c.Timeout = durationpb.New(d)
	}
	return c
}

func globalActions(g *config.GlobalRateLimitSpec) []*routev3.RateLimit {
	var out []*routev3.RateLimit
	for _, d := range g.Descriptors {
		rl := &routev3.RateLimit{}
		for _, e := range d.Entries {
			var a routev3.RateLimit_Action
			switch {
			case e.Header != "":
				a.ActionSpecifier = &routev3.RateLimit_Action_RequestHeaders_{RequestHeaders: &routev3.RateLimit_Action_RequestHeaders{
					HeaderName: e.Header, DescriptorKey: e.Key}}
			case e.RemoteAddress:
				a.ActionSpecifier = &routev3.RateLimit_Action_RemoteAddress_{RemoteAddress: &routev3.RateLimit_Action_RemoteAddress{}}
			case e.Match != nil:
				a.ActionSpecifier = &routev3.RateLimit_Action_HeaderValueMatch_{HeaderValueMatch: &routev3.RateLimit_Action_HeaderValueMatch{
					DescriptorKey: e.Key, DescriptorValue: e.Value, Headers: headerMatchers(e.Match)}}
			default:
				a.ActionSpecifier = &routev3.RateLimit_Action_GenericKey_{GenericKey: &routev3.RateLimit_Action_GenericKey{
					DescriptorKey: e.Key, DescriptorValue: e.Value}}
			}
			rl.Actions = append(rl.Actions, &a)
		}
		out = append(out, rl)
	}
	return out
}

// filterStruct is the HTTP filter name with typed config cfg as a patch value.
func filterStruct(name string, cfg proto.Message) (*structpb.Struct, error) {
	a, err := anypb.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", cfg.ProtoReflect().Descriptor().FullName(), err)
	}
	return structOf(&hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: a}})
}

// structOf is m as an EnvoyFilter patch value: its JSON form as a Struct.
func structOf(m proto.Message) (*structpb.Struct, error) {
	b, err := protojson.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	s := &structpb.Struct{}
	if err := protojson.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return s, nil
}

package xdsconfig

import (
	"fmt"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

const (
	typeCORSPolicy = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"
	filterCORS     = "envoy.filters.http.cors"
	filterFault    = "envoy.filters.http.fault"
)

func unmarshalCORSAny(a *anypb.Any, path string) (*CORSPolicy, error) {
	if a.GetTypeUrl() != typeCORSPolicy {
		return nil, fmt.Errorf("field %s: type %q is not a CorsPolicy", path, a.GetTypeUrl())
	}
	p := &corsv3.CorsPolicy{}
	if err := a.UnmarshalTo(p); err != nil {
		return nil, fmt.Errorf("field %s: %w", path, err)
	}
	return unmarshalCORS(p, path)
}

func unmarshalCORS(p *corsv3.CorsPolicy, path string) (*CORSPolicy, error) {
	if err := checkFields(p, path, "allow_origin_string_match", "allow_methods", "allow_headers", "expose_headers",
		"max_age", "allow_credentials", "filter_enabled", "shadow_enabled", "forward_not_matching_preflights"); err != nil {
		return nil, err
	}
	out := &CORSPolicy{AllowMethods: p.GetAllowMethods(), AllowHeaders: p.GetAllowHeaders(),
		ExposeHeaders: p.GetExposeHeaders(), MaxAge: p.GetMaxAge(), AllowCredentials: p.GetAllowCredentials().GetValue(),
		EnabledPerMillion: 1_000_000, ForwardNotMatchingPreflights: true}
	for i, m := range p.GetAllowOriginStringMatch() {
		sm, err := convertStringMatcher(m, fmt.Sprintf("%s.allow_origin_string_match[%d]", path, i))
		if err != nil {
			return nil, err
		}
		out.AllowOrigins = append(out.AllowOrigins, sm)
	}
	if f := p.GetFilterEnabled(); f != nil {
		out.EnabledPerMillion = fractionPerMillion(f.GetDefaultValue())
	}
	if f := p.GetShadowEnabled(); f != nil {
		out.ShadowPerMillion = fractionPerMillion(f.GetDefaultValue())
	}
	if f := p.GetForwardNotMatchingPreflights(); f != nil {
		out.ForwardNotMatchingPreflights = f.GetValue()
	}
	return out, nil
}

// unmarshalLegacyCORS converts the deprecated route.v3.CorsPolicy of a
// virtual host's or route action's `cors` field.
func unmarshalLegacyCORS(p *routev3.CorsPolicy, path string) (*CORSPolicy, error) {
	if err := checkFields(p, path, "allow_origin_string_match", "allow_methods", "allow_headers", "expose_headers",
		"max_age", "allow_credentials", "filter_enabled", "shadow_enabled", "forward_not_matching_preflights"); err != nil {
		return nil, err
	}
	return unmarshalCORS(&corsv3.CorsPolicy{AllowOriginStringMatch: p.GetAllowOriginStringMatch(),
		AllowMethods: p.GetAllowMethods(), AllowHeaders: p.GetAllowHeaders(), ExposeHeaders: p.GetExposeHeaders(),
		MaxAge: p.GetMaxAge(), AllowCredentials: p.GetAllowCredentials(), FilterEnabled: p.GetFilterEnabled(),
		ShadowEnabled: p.GetShadowEnabled(), ForwardNotMatchingPreflights: p.GetForwardNotMatchingPreflights()}, path)
}

package xdsconfig

import (
	"errors"
	"fmt"

	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	dfpfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/dynamic_forward_proxy/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// unmarshalHTTPFilterConfig checks the typed_config of one HCM http filter
// and returns its checked form (see HTTPFilter.Config). ok is false for a
// type the proxy does not implement.
//
// Adding a filter (the security engineer's envoy.filters.http.rbac and
// envoy.filters.http.jwt_authn): add a case for its type URL here that
// returns the filter's checked config, a case in unmarshalPerFilter for its
// per-route type, and a case in the proxy's newHTTPFilter (internal/proxy,
// filters.go) that builds the runtime filter. Nothing else changes: the
// proxy runs filters in the order the HCM lists them, before the router.
func unmarshalHTTPFilterConfig(a *anypb.Any, path string) (cfg any, ok bool, err error) {
	switch a.GetTypeUrl() {
	case typeRouter:
		if err := a.UnmarshalTo(&routerv3.Router{}); err != nil {
			return nil, true, fmt.Errorf("field %s: %w", path, err)
		}
		return &Router{}, true, nil
	case typeFault:
		f, err := unmarshalFaultAny(a, path)
		return f, true, err
	case typeIstioStats:
		f, err := unmarshalIstioStats(a, path)
		return f, true, err
	case typeCORS:
		c := &corsv3.Cors{}
		if err := a.UnmarshalTo(c); err != nil {
			return nil, true, fmt.Errorf("field %s: %w", path, err)
		}
		if err := checkFields(c, path); err != nil {
			return nil, true, err
		}
		return &CORSFilter{}, true, nil
	case typeRBACHTTP:
		f, err := unmarshalRBACHTTP(a, path)
		return f, true, err
	case typeJWTAuthn:
		f, err := unmarshalJWTAuthn(a, path)
		return f, true, err
	case typeExtAuthz:
		f, err := unmarshalExtAuthz(a, path)
		return f, true, err
	case typeLocalRateLimit: // unmarshal_ratelimit.go
		f, err := unmarshalLocalRateLimitAny(a, path)
		return f, true, err
	case typeRateLimit:
		f, err := unmarshalRateLimitAny(a, path)
		return f, true, err
	case typeDFPFilter:
		c := &dfpfilterv3.FilterConfig{}
		if err := a.UnmarshalTo(c); err != nil {
			return nil, true, fmt.Errorf("field %s: %w", path, err)
		}
		if err := checkFields(c, path, "dns_cache_config"); err != nil {
			return nil, true, err
		}
		if err := checkDNSCache(c.GetDnsCacheConfig(), path+".dns_cache_config"); err != nil {
			return nil, true, err
		}
		return &DynamicForwardProxyFilter{}, true, nil
	}
	return nil, false, nil
}

// unmarshalPerFilter checks a typed_per_filter_config entry of a filter
// other than cors and fault (which have fields of their own on Route and
// VirtualHost).
func unmarshalPerFilter(name string, a *anypb.Any, path string) (any, error) {
	switch a.GetTypeUrl() {
	case typeExtAuthzPerRoute:
		return unmarshalExtAuthzPerRoute(a, path)
	case typeLocalRateLimit: // unmarshal_ratelimit.go
		return unmarshalLocalRateLimitAny(a, path)
	case typeRBACPerRoute: // unmarshal_security.go
		return unmarshalRBACPerRoute(a, path)
	case typeJWTPerRoute:
		return unmarshalJWTPerRoute(a, path)
	}
	return nil, fmt.Errorf("field %s: per-filter config for %q (%s) %w", path, name, a.GetTypeUrl(), errUnsupported)
}

// errUnsupported ends the message of a config the proxy does not implement.
var errUnsupported = errors.New("unsupported")

func isUnsupported(err error) bool { return errors.Is(err, errUnsupported) }

// listenerFilterSupported reports the listener filters unmarshalListener accepts.
func listenerFilterSupported(name string) bool {
	switch name {
	case "envoy.filters.listener.original_dst", "envoy.filters.listener.tls_inspector", "envoy.filters.listener.http_inspector":
		return true
	}
	return false
}

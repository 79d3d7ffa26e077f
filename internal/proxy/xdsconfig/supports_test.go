package xdsconfig

import (
	"testing"

	"github.com/bowline-mesh/bowline/internal/config/envoypatch"
)

func TestSupports(t *testing.T) {
	for _, tc := range []struct {
		kind          envoypatch.Kind
		name, typeURL string
		want          bool
	}{
		{envoypatch.HTTPFilter, "envoy.filters.http.local_ratelimit", typeLocalRateLimit, true},
		{envoypatch.HTTPFilter, "envoy.filters.http.ratelimit", typeRateLimit, true},
		{envoypatch.HTTPFilter, "envoy.filters.http.router", typeRouter, true},
		{envoypatch.HTTPFilter, "envoy.filters.http.lua", "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua", false},
		{envoypatch.HTTPFilter, "x", "type.googleapis.com/udpa.type.v1.TypedStruct", false},
		{envoypatch.NetworkFilter, "envoy.filters.network.http_connection_manager", typeHCM, true},
		{envoypatch.NetworkFilter, "envoy.filters.network.local_ratelimit",
			"type.googleapis.com/envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit", false},
		{envoypatch.ListenerFilter, "envoy.filters.listener.tls_inspector", "", true},
		{envoypatch.ListenerFilter, "envoy.filters.listener.proxy_protocol", "", false},
		{envoypatch.PerFilterConfig, "envoy.filters.http.local_ratelimit", typeLocalRateLimit, true},
		{envoypatch.PerFilterConfig, "envoy.filters.http.fault", typeFault, true},
		{envoypatch.PerFilterConfig, "envoy.filters.http.rbac", typeRBACPerRoute, true},
		{envoypatch.PerFilterConfig, "envoy.filters.http.jwt_authn", typeJWTPerRoute, true},
		{envoypatch.PerFilterConfig, "envoy.filters.http.ratelimit",
			"type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute", false},
	} {
		if got := Supports(tc.kind, tc.name, tc.typeURL); got != tc.want {
			t.Errorf("Supports(%s, %s, %s) = %v, want %v", tc.kind, tc.name, tc.typeURL, got, tc.want)
		}
	}
}

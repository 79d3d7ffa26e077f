package envoypatch

import (
	"encoding/json"
	"strings"
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/structpb"
	networking "istio.io/api/networking/v1alpha3"
)

func value(t *testing.T, js string) *structpb.Struct {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		t.Fatal(err)
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestValueTypedStruct(t *testing.T) {
	const lrl = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
	for _, tc := range []struct{ name, value, wantType string }{
		{"udpa TypedStruct of a known type", `{"name":"rl","typed_config":{"@type":"type.googleapis.com/udpa.type.v1.TypedStruct",
			"type_url":"` + lrl + `","value":{"stat_prefix":"p"}}}`, lrl},
		{"xds TypedStruct of a known type", `{"name":"rl","typed_config":{"@type":"type.googleapis.com/xds.type.v3.TypedStruct",
			"type_url":"` + lrl + `","value":{"statPrefix":"p"}}}`, lrl},
		{"TypedStruct of an unknown type stays", `{"name":"x","typed_config":{"@type":"type.googleapis.com/udpa.type.v1.TypedStruct",
			"type_url":"type.googleapis.com/example.Unknown","value":{"a":1}}}`, "type.googleapis.com/udpa.type.v1.TypedStruct"},
		{"plain typed config", `{"name":"rl","typed_config":{"@type":"` + lrl + `","stat_prefix":"p"}}`, lrl},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Value(networking.EnvoyFilter_HTTP_FILTER, value(t, tc.value))
			if err != nil {
				t.Fatal(err)
			}
			hf := m.(*hcmv3.HttpFilter)
			if got := hf.GetTypedConfig().GetTypeUrl(); got != tc.wantType {
				t.Errorf("type %s, want %s", got, tc.wantType)
			}
			if tc.wantType == lrl && !strings.Contains(string(hf.GetTypedConfig().GetValue()), "p") {
				t.Errorf("stat_prefix lost: %x", hf.GetTypedConfig().GetValue())
			}
			exts := Extensions(m)
			if len(exts) != 1 || exts[0].Kind != HTTPFilter || exts[0].Name != hf.GetName() {
				t.Fatalf("extensions: %+v", exts)
			}
			if tc.name == "TypedStruct of an unknown type stays" && exts[0].TypeURL != "type.googleapis.com/example.Unknown" {
				t.Errorf("extension type %s, want the TypedStruct's type_url", exts[0].TypeURL)
			}
		})
	}
}

func TestExtensionsOfRoutesAndListeners(t *testing.T) {
	m, err := Value(networking.EnvoyFilter_LISTENER, value(t, `{"name":"l","filter_chains":[{"filters":[{"name":"envoy.filters.network.http_connection_manager",
		"typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
		"stat_prefix":"s","http_filters":[{"name":"envoy.filters.http.lua","typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"}}],
		"route_config":{"virtual_hosts":[{"name":"v","domains":["*"],"typed_per_filter_config":{"envoy.filters.http.local_ratelimit":{
		"@type":"type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit","stat_prefix":"x"}}}]}}}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range Extensions(m) {
		got = append(got, string(e.Kind)+" "+e.Name+" at "+e.Path)
	}
	want := []string{
		"network filter envoy.filters.network.http_connection_manager at filter_chains[0].filters[0].typed_config",
		"HTTP filter envoy.filters.http.lua at filter_chains[0].filters[0].typed_config.http_filters[0].typed_config",
		"per-filter config envoy.filters.http.local_ratelimit at filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].typed_per_filter_config[envoy.filters.http.local_ratelimit]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

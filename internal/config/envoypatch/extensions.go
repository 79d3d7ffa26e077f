package envoypatch

import (
	"fmt"
	"maps"
	"slices"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Kind says where in Envoy's config an extension sits.
type Kind string

// Extension kinds.
const (
	HTTPFilter     Kind = "HTTP filter"
	NetworkFilter  Kind = "network filter"
	ListenerFilter Kind = "listener filter"
	// PerFilterConfig is a typed_per_filter_config entry of a route,
	// virtual host or route configuration.
	PerFilterConfig Kind = "per-filter config"
)

// Extension is one Envoy extension a patch value configures.
type Extension struct {
	Kind Kind
	// Name is the filter name (for PerFilterConfig the filter the entry is for).
	Name string
	// TypeURL is the config's type; for a TypedStruct of an unknown type, the
	// type it names.
	TypeURL string
	// Path is where it sits in the value, e.g. "typed_config" or
	// "filters[0].typed_config".
	Path string
	// Discovered: the config is not in the value but to be fetched by
	// extension config discovery (config_discovery, Istio's
	// EXTENSION_CONFIG); TypeURL is then empty.
	Discovered bool
}

// discovered is the extension of a filter configured by config_discovery.
func discovered(kind Kind, name, path string) Extension {
	return Extension{Kind: kind, Name: name, Path: path, Discovered: true}
}

// Extensions lists the extensions a patch value (from Value) configures,
// in the order they appear.
func Extensions(m proto.Message) []Extension {
	var out []Extension
	walkExtensions(m, "", &out)
	return out
}

func walkExtensions(m proto.Message, path string, out *[]Extension) {
	join := func(p string) string {
		if path == "" {
			return p
		}
		return path + "." + p
	}
	switch v := m.(type) {
	case *listenerv3.Listener:
		for i, lf := range v.GetListenerFilters() {
			walkExtensions(lf, join(fmt.Sprintf("listener_filters[%d]", i)), out)
		}
		for i, fc := range v.GetFilterChains() {
			walkExtensions(fc, join(fmt.Sprintf("filter_chains[%d]", i)), out)
		}
		if fc := v.GetDefaultFilterChain(); fc != nil {
			walkExtensions(fc, join("default_filter_chain"), out)
		}
	case *listenerv3.ListenerFilter:
		if v.GetConfigDiscovery() != nil {
			*out = append(*out, discovered(ListenerFilter, v.GetName(), join("config_discovery")))
			break
		}
		*out = append(*out, Extension{Kind: ListenerFilter, Name: v.GetName(), TypeURL: TypeURL(v.GetTypedConfig()), Path: join("typed_config")})
	case *listenerv3.FilterChain:
		for i, f := range v.GetFilters() {
			walkExtensions(f, join(fmt.Sprintf("filters[%d]", i)), out)
		}
	case *listenerv3.Filter:
		tc := v.GetTypedConfig()
		*out = append(*out, Extension{Kind: NetworkFilter, Name: v.GetName(), TypeURL: TypeURL(tc), Path: join("typed_config")})
		hcm := &hcmv3.HttpConnectionManager{}
		if tc != nil && tc.MessageIs(hcm) && tc.UnmarshalTo(hcm) == nil {
			p := join("typed_config")
			for i, hf := range hcm.GetHttpFilters() {
				walkExtensions(hf, fmt.Sprintf("%s.http_filters[%d]", p, i), out)
			}
			if rc := hcm.GetRouteConfig(); rc != nil {
				walkExtensions(rc, p+".route_config", out)
			}
		}
	case *hcmv3.HttpFilter:
		if v.GetConfigDiscovery() != nil {
			*out = append(*out, discovered(HTTPFilter, v.GetName(), join("config_discovery")))
			break
		}
		*out = append(*out, Extension{Kind: HTTPFilter, Name: v.GetName(), TypeURL: TypeURL(v.GetTypedConfig()), Path: join("typed_config")})
	case *routev3.RouteConfiguration:
		perFilter(v.GetTypedPerFilterConfig(), path, out)
		for i, vh := range v.GetVirtualHosts() {
			walkExtensions(vh, join(fmt.Sprintf("virtual_hosts[%d]", i)), out)
		}
	case *routev3.VirtualHost:
		perFilter(v.GetTypedPerFilterConfig(), path, out)
		for i, r := range v.GetRoutes() {
			walkExtensions(r, join(fmt.Sprintf("routes[%d]", i)), out)
		}
	case *routev3.Route:
		perFilter(v.GetTypedPerFilterConfig(), path, out)
		for i, wc := range v.GetRoute().GetWeightedClusters().GetClusters() {
			perFilter(wc.GetTypedPerFilterConfig(), join(fmt.Sprintf("route.weighted_clusters.clusters[%d]", i)), out)
		}
	}
}

func perFilter(m map[string]*anypb.Any, path string, out *[]Extension) {
	if path != "" {
		path += "."
	}
	for _, name := range slices.Sorted(maps.Keys(m)) {
		*out = append(*out, Extension{Kind: PerFilterConfig, Name: name, TypeURL: TypeURL(m[name]),
			Path: fmt.Sprintf("%styped_per_filter_config[%s]", path, name)})
	}
}

// TypeURL is the type of a typed config: the type a TypedStruct names, else
// the Any's own; "" for nil.
func TypeURL(a *anypb.Any) string {
	if a == nil {
		return ""
	}
	if inner, err := a.UnmarshalNew(); err == nil {
		if url, _ := typedStruct(inner); url != "" {
			return url
		}
	}
	return a.GetTypeUrl()
}

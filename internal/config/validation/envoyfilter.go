package validation

import (
	"fmt"
	"regexp"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/config/envoypatch"
)

// envoyFilterHCM is the network filter that holds HTTP filters.
const envoyFilterHCM = "envoy.filters.network.http_connection_manager"

// envoyFilterDeprecatedNames maps Envoy's deprecated filter names to their
// current names.
var envoyFilterDeprecatedNames = map[string]string{
	"envoy.http_connection_manager": envoyFilterHCM,
	"envoy.tcp_proxy":               "envoy.filters.network.tcp_proxy",
	"envoy.ext_authz":               "envoy.filters.http.ext_authz",
	"envoy.router":                  "envoy.filters.http.router",
	"envoy.cors":                    "envoy.filters.http.cors",
	"envoy.fault":                   "envoy.filters.http.fault",
	"envoy.lua":                     "envoy.filters.http.lua",
	"envoy.gzip":                    "envoy.filters.http.gzip",
	"envoy.health_check":            "envoy.filters.http.health_check",
	"envoy.rate_limit":              "envoy.filters.http.ratelimit",
	"envoy.grpc_web":                "envoy.filters.http.grpc_web",
	"envoy.filters.http.jwt":        "envoy.filters.http.jwt_authn",
	"envoy.listener.tls_inspector":  "envoy.filters.listener.tls_inspector",
	"envoy.listener.http_inspector": "envoy.filters.listener.http_inspector",
	"envoy.listener.original_dst":   "envoy.filters.listener.original_dst",
	"envoy.mongo_proxy":             "envoy.filters.network.mongo_proxy",
	"envoy.redis_proxy":             "envoy.filters.network.redis_proxy",
	"envoy.mysql_proxy":             "envoy.filters.network.mysql_proxy",
}

// validateEnvoyFilter checks an EnvoyFilter's structure as Istio does
// (selector, targetRefs, and that applyTo, match, context and patch fit
// together) and that each patch value is the Envoy message its applyTo asks
// for (envoypatch.Value). Whether Bowline's proxy runs the extensions a
// value brings in is `bowline analyze`'s question (BWL0003).
func validateEnvoyFilter(obj *config.Object) []config.FieldError {
	ef, ok := obj.Spec.(*networking.EnvoyFilter)
	if !ok {
		return []config.FieldError{{Path: "spec", Reason: fmt.Sprintf("unexpected spec type %T", obj.Spec)}}
	}
	r := &fieldErrors{}
	secCheckDryRun(r, obj)
	if ws := ef.GetWorkloadSelector(); ws != nil {
		secCheckLabels(r, "spec.workloadSelector", "spec.workloadSelector.labels", ws.GetLabels(), 256)
		if len(ef.GetTargetRefs()) > 0 {
			r.errorf("spec.targetRefs", "only one of workloadSelector and targetRefs may be set")
		}
	}
	secCheckTargetRefs(r, "spec.targetRefs", ef.GetTargetRefs())
	for i, cp := range ef.GetConfigPatches() {
		envoyFilterCheckPatch(r, indexPath("spec.configPatches", i), cp)
	}
	return r.list
}

// envoyFilterCheckPatch checks one configPatches entry.
func envoyFilterCheckPatch(r *fieldErrors, path string, cp *networking.EnvoyFilter_EnvoyConfigObjectPatch) {
	if cp == nil {
		r.errorf(path, "must not be null")
		return
	}
	applyTo := cp.GetApplyTo()
	if applyTo == networking.EnvoyFilter_INVALID {
		r.errorf(path+".applyTo", "required")
		return
	}
	patch := cp.GetPatch()
	if patch == nil {
		r.errorf(path+".patch", "required")
		return
	}
	op := patch.GetOperation()
	if op == networking.EnvoyFilter_Patch_INVALID {
		r.errorf(path+".patch.operation", "required")
		return
	}
	if op != networking.EnvoyFilter_Patch_REMOVE && patch.GetValue() == nil {
		r.errorf(path+".patch.value", "required for operation %s", op)
		return
	}

	match := cp.GetMatch()
	if pv := match.GetProxy().GetProxyVersion(); pv != "" {
		if _, err := regexp.Compile(pv); err != nil {
			r.errorf(path+".match.proxy.proxyVersion", "invalid regular expression %q", pv)
			return
		}
	}
	waypoint := match.GetWaypoint() != nil
	if match.GetContext() == networking.EnvoyFilter_WAYPOINT && !waypoint {
		r.errorf(path+".match", "context WAYPOINT requires a waypoint match")
	} else if match.GetContext() != networking.EnvoyFilter_WAYPOINT && waypoint {
		r.errorf(path+".match.waypoint", "only allowed with context WAYPOINT")
	}
	if p := match.GetWaypoint().GetPortNumber(); p > 65535 {
		r.errorf(path+".match.waypoint.portNumber", "port %d is not in 1-65535", p)
	}

	hasObject := match.GetObjectTypes() != nil
	switch applyTo {
	case networking.EnvoyFilter_LISTENER, networking.EnvoyFilter_FILTER_CHAIN,
		networking.EnvoyFilter_NETWORK_FILTER, networking.EnvoyFilter_HTTP_FILTER, networking.EnvoyFilter_LISTENER_FILTER:
		if hasObject && match.GetListener() == nil && !waypoint {
			r.errorf(path+".match", "applyTo %s needs a listener match", applyTo)
			return
		}
		if !envoyFilterCheckListenerMatch(r, path+".match.listener", applyTo, match.GetListener()) {
			return
		}
	case networking.EnvoyFilter_ROUTE_CONFIGURATION, networking.EnvoyFilter_VIRTUAL_HOST, networking.EnvoyFilter_HTTP_ROUTE:
		if hasObject && match.GetRouteConfiguration() == nil && !waypoint {
			r.errorf(path+".match", "applyTo %s needs a routeConfiguration match", applyTo)
		}
		if p := match.GetRouteConfiguration().GetPortNumber(); p > 65535 {
			r.warnf(path+".match.routeConfiguration.portNumber", "port %d is above 65535 and never matches", p)
		}
	case networking.EnvoyFilter_CLUSTER:
		if hasObject && match.GetCluster() == nil && !waypoint {
			r.errorf(path+".match", "applyTo CLUSTER needs a cluster match")
		}
		if p := match.GetCluster().GetPortNumber(); p > 65535 {
			r.warnf(path+".match.cluster.portNumber", "port %d is above 65535 and never matches", p)
		}
	case networking.EnvoyFilter_BOOTSTRAP:
		r.warnf(path+".applyTo", "BOOTSTRAP is deprecated in Istio and not applied by Bowline: its proxy takes no Envoy bootstrap "+
			"(it is configured over xDS and by its command line), so the patch has no effect")
		return
	case networking.EnvoyFilter_EXTENSION_CONFIG:
		r.warnf(path+".applyTo", "EXTENSION_CONFIG is not applied by Bowline: it serves no extension config discovery (ECDS), "+
			"so the patch has no effect, and a filter whose config_discovery names this config is refused (NACK) by the proxies it reaches")
		return
	}

	// Combinations Istio documents as ignored.
	switch {
	case op == networking.EnvoyFilter_Patch_REPLACE && applyTo != networking.EnvoyFilter_HTTP_FILTER &&
		applyTo != networking.EnvoyFilter_NETWORK_FILTER && applyTo != networking.EnvoyFilter_VIRTUAL_HOST &&
		applyTo != networking.EnvoyFilter_LISTENER_FILTER:
		r.warnf(path+".patch.operation", "REPLACE only applies to HTTP_FILTER, NETWORK_FILTER, LISTENER_FILTER and VIRTUAL_HOST; with %s it has no effect", applyTo)
	case applyTo == networking.EnvoyFilter_LISTENER_FILTER && match.GetListener().GetListenerFilter() == "" &&
		(op == networking.EnvoyFilter_Patch_REPLACE || op == networking.EnvoyFilter_Patch_REMOVE ||
			op == networking.EnvoyFilter_Patch_MERGE || op == networking.EnvoyFilter_Patch_MERGE_AND_REPLACE_LIST):
		r.warnf(path+".match.listener.listenerFilter", "%s of a LISTENER_FILTER needs the listener filter's name here; without it the patch has no effect", op)
	case applyTo == networking.EnvoyFilter_ROUTE_CONFIGURATION && op != networking.EnvoyFilter_Patch_MERGE:
		r.warnf(path+".patch.operation", "only MERGE applies to ROUTE_CONFIGURATION; %s has no effect", op)
	}
	if patch.GetFilterClass() != networking.EnvoyFilter_Patch_UNSPECIFIED && op != networking.EnvoyFilter_Patch_ADD {
		r.warnf(path+".patch.filterClass", "only used with operation ADD; ignored with %s", op)
	} else if patch.GetFilterClass() != networking.EnvoyFilter_Patch_UNSPECIFIED {
		r.warnf(path+".patch.filterClass", "not supported by Bowline: the filter is appended as with ADD")
	}
	if match.GetContext() == networking.EnvoyFilter_WAYPOINT {
		r.warnf(path+".match.context", "Bowline has no waypoints: the patch has no effect")
	}
	if match.GetProxy().GetProxyVersion() != "" || len(match.GetProxy().GetMetadata()) > 0 {
		r.warnf(path+".match.proxy", "Bowline's proxies report no Istio version or metadata to match: the patch has no effect")
	}
	if _, err := envoypatch.NewMessage(applyTo); err != nil {
		r.warnf(path+".applyTo", "%v: the patch has no effect", err)
		return
	}
	if _, err := envoypatch.Value(applyTo, patch.GetValue()); err != nil {
		r.errorf(path+".patch.value", "%v", err)
	}
}

// envoyFilterCheckListenerMatch checks the filter chain and filter match of
// a listener-class patch and reports whether checking may go on.
func envoyFilterCheckListenerMatch(r *fieldErrors, path string, applyTo networking.EnvoyFilter_ApplyTo, lm *networking.EnvoyFilter_ListenerMatch) bool {
	if lm == nil {
		return true
	}
	if p := lm.GetPortNumber(); p > 65535 {
		r.warnf(path+".portNumber", "port %d is above 65535 and never matches", p)
	}
	if p := lm.GetFilterChain().GetDestinationPort(); p > 65535 {
		r.warnf(path+".filterChain.destinationPort", "port %d is above 65535 and never matches", p)
	}
	f := lm.GetFilterChain().GetFilter()
	if f == nil {
		return true
	}
	fp := path + ".filterChain.filter"
	if applyTo == networking.EnvoyFilter_LISTENER || applyTo == networking.EnvoyFilter_FILTER_CHAIN {
		r.warnf(fp, "a filter match has no effect with applyTo %s", applyTo)
	}
	if f.GetName() == "" {
		r.errorf(fp+".name", "required in a filter match")
		return false
	}
	if sub := f.GetSubFilter(); sub != nil {
		switch {
		case applyTo != networking.EnvoyFilter_HTTP_FILTER:
			r.errorf(fp+".subFilter", "only allowed with applyTo HTTP_FILTER")
			return false
		case f.GetName() != envoyFilterHCM && f.GetName() != "envoy.http_connection_manager":
			r.errorf(fp+".subFilter", "requires the filter match to name %s", envoyFilterHCM)
			return false
		case sub.GetName() == "":
			r.errorf(fp+".subFilter.name", "required in a subFilter match")
			return false
		}
	}
	if newName, ok := envoyFilterDeprecatedNames[f.GetName()]; ok {
		r.warnf(fp+".name", "filter name %q is deprecated; use %q", f.GetName(), newName)
	}
	if newName, ok := envoyFilterDeprecatedNames[f.GetSubFilter().GetName()]; ok {
		r.warnf(fp+".subFilter.name", "filter name %q is deprecated; use %q", f.GetSubFilter().GetName(), newName)
	}
	return true
}

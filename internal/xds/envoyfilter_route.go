package xds

import (
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/anypb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/model"
)

func typedConfigTS(a *anypb.Any) *corev3.TransportSocket_TypedConfig {
	return &corev3.TransportSocket_TypedConfig{TypedConfig: a}
}

// patchRouteConfiguration applies ROUTE_CONFIGURATION, VIRTUAL_HOST and
// HTTP_ROUTE patches to rc; ports are the ports a routeConfiguration
// match's portNumber may name for it.
func (pt *patcher) patchRouteConfiguration(ctx networking.EnvoyFilter_PatchContext, rc *routev3.RouteConfiguration, ports []uint32) {
	for _, p := range pt.patches[networking.EnvoyFilter_ROUTE_CONFIGURATION] {
		if isMerge(p.Operation) && contextMatch(ctx, p) && pt.routeConfigMatch(ctx, rc, ports, p) {
			mergePatch(p.Operation, rc, p.Value)
		}
	}
	removed := map[int]bool{}
	for i := range rc.GetVirtualHosts() {
		for _, p := range pt.patches[networking.EnvoyFilter_VIRTUAL_HOST] {
			if !contextMatch(ctx, p) || !pt.routeConfigMatch(ctx, rc, ports, p) || !vhostMatch(rc.VirtualHosts[i], p) {
				continue
			}
			if p.Operation == networking.EnvoyFilter_Patch_REMOVE {
				removed[i] = true
				break
			}
			if isMerge(p.Operation) {
				mergePatch(p.Operation, rc.VirtualHosts[i], p.Value)
			} else if p.Operation == networking.EnvoyFilter_Patch_REPLACE {
				rc.VirtualHosts[i] = clonePatch[*routev3.VirtualHost](p)
			}
		}
		if !removed[i] {
			pt.patchRoutes(ctx, rc, ports, rc.VirtualHosts[i])
		}
	}
	if len(removed) > 0 {
		kept := rc.VirtualHosts[:0]
		for i, vh := range rc.VirtualHosts {
			if !removed[i] {
				kept = append(kept, vh)
			}
		}
		rc.VirtualHosts = kept
	}
	for _, p := range pt.patches[networking.EnvoyFilter_VIRTUAL_HOST] {
		if p.Operation == networking.EnvoyFilter_Patch_ADD && contextMatch(ctx, p) && pt.routeConfigMatch(ctx, rc, ports, p) {
			rc.VirtualHosts = append(rc.VirtualHosts, clonePatch[*routev3.VirtualHost](p))
		}
	}
}

// routeConfigMatch is Istio's: name, port (ports), and for a gateway the
// port name and gateway, which Istio's plain HTTP route names ("http.PORT")
// do not carry, so a match on them fails there as in Istio.
func (pt *patcher) routeConfigMatch(ctx networking.EnvoyFilter_PatchContext, rc *routev3.RouteConfiguration, ports []uint32, p *model.EnvoyPatch) bool {
	m := p.Match.GetRouteConfiguration()
	if m == nil {
		return true
	}
	if m.GetName() != "" && m.GetName() != rc.GetName() {
		return false
	}
	if m.GetPortNumber() != 0 && !slices.Contains(ports, m.GetPortNumber()) {
		return false
	}
	if ctx == networking.EnvoyFilter_GATEWAY && (m.GetPortName() != "" || m.GetGateway() != "") {
		return false
	}
	return true
}

func vhostMatch(vh *routev3.VirtualHost, p *model.EnvoyPatch) bool {
	m := p.Match.GetRouteConfiguration().GetVhost()
	if m == nil {
		return true
	}
	return (m.GetName() == "" || m.GetName() == vh.GetName()) &&
		(m.GetDomainName() == "" || slices.Contains(vh.GetDomains(), m.GetDomainName()))
}

// hasRouteMatch reports whether p names routes of a virtual host.
func hasRouteMatch(p *model.EnvoyPatch) bool {
	return p.Match.GetRouteConfiguration().GetVhost().GetRoute() != nil
}

func routeMatch(r *routev3.Route, p *model.EnvoyPatch) bool {
	m := p.Match.GetRouteConfiguration().GetVhost().GetRoute()
	if m == nil {
		return true
	}
	if m.GetName() != "" && m.GetName() != r.GetName() {
		return false
	}
	switch m.GetAction() {
	case networking.EnvoyFilter_RouteConfigurationMatch_RouteMatch_ROUTE:
		return r.GetRoute() != nil
	case networking.EnvoyFilter_RouteConfigurationMatch_RouteMatch_REDIRECT:
		return r.GetRedirect() != nil
	case networking.EnvoyFilter_RouteConfigurationMatch_RouteMatch_DIRECT_RESPONSE:
		return r.GetDirectResponse() != nil
	}
	return true
}

func (pt *patcher) patchRoutes(ctx networking.EnvoyFilter_PatchContext, rc *routev3.RouteConfiguration, ports []uint32, vh *routev3.VirtualHost) {
	removed := map[*routev3.Route]bool{}
	for _, r := range vh.GetRoutes() {
		for _, p := range pt.patches[networking.EnvoyFilter_HTTP_ROUTE] {
			if !contextMatch(ctx, p) || !pt.routeConfigMatch(ctx, rc, ports, p) || !vhostMatch(vh, p) || !routeMatch(r, p) {
				continue
			}
			if p.Operation == networking.EnvoyFilter_Patch_REMOVE {
				removed[r] = true
				break
			}
			if isMerge(p.Operation) {
				mergePatch(p.Operation, r, p.Value)
			}
		}
	}
	for _, p := range pt.patches[networking.EnvoyFilter_HTTP_ROUTE] {
		if !contextMatch(ctx, p) || !pt.routeConfigMatch(ctx, rc, ports, p) || !vhostMatch(vh, p) {
			continue
		}
		match := func(r *routev3.Route) bool { return !removed[r] && routeMatch(r, p) }
		switch p.Operation {
		case networking.EnvoyFilter_Patch_ADD:
			vh.Routes = append(vh.Routes, clonePatch[*routev3.Route](p))
		case networking.EnvoyFilter_Patch_INSERT_AFTER:
			if !hasRouteMatch(p) {
				vh.Routes = append(vh.Routes, clonePatch[*routev3.Route](p))
				continue
			}
			vh.Routes, _ = insertAfter(vh.Routes, clonePatch[*routev3.Route](p), match)
		case networking.EnvoyFilter_Patch_INSERT_BEFORE:
			if !hasRouteMatch(p) {
				vh.Routes = slices.Insert(vh.Routes, 0, clonePatch[*routev3.Route](p))
				continue
			}
			vh.Routes, _ = insertBefore(vh.Routes, clonePatch[*routev3.Route](p), match)
		case networking.EnvoyFilter_Patch_INSERT_FIRST:
			// Istio: first in the virtual host, if any route matches.
			if !hasRouteMatch(p) || slices.ContainsFunc(vh.Routes, match) {
				vh.Routes = slices.Insert(vh.Routes, 0, clonePatch[*routev3.Route](p))
			}
		}
	}
	vh.Routes = slices.DeleteFunc(vh.Routes, func(r *routev3.Route) bool { return removed[r] })
}

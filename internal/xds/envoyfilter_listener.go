package xds

import (
	"slices"
	"strings"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/model"
)

// patchListeners applies the listener-class patches (LISTENER,
// FILTER_CHAIN, NETWORK_FILTER, HTTP_FILTER, and the route patches of inline
// route configurations) to the listeners of one context, then its listener
// ADDs.
func (pt *patcher) patchListeners(ctx networking.EnvoyFilter_PatchContext, ls []*listenerv3.Listener) []*listenerv3.Listener {
	out := ls[:0]
	for _, l := range ls {
		if pt.patchListener(ctx, l) {
			out = append(out, l)
		}
	}
	for _, p := range pt.patches[networking.EnvoyFilter_LISTENER] {
		if p.Operation == networking.EnvoyFilter_Patch_ADD && addsIn(ctx, p) {
			out = append(out, clonePatch[*listenerv3.Listener](p))
		}
	}
	return out
}

// patchListener patches l and reports whether it stays.
func (pt *patcher) patchListener(ctx networking.EnvoyFilter_PatchContext, l *listenerv3.Listener) bool {
	for _, p := range pt.patches[networking.EnvoyFilter_LISTENER] {
		if !contextMatch(ctx, p) || !pt.listenerMatch(l, p) {
			continue
		}
		switch {
		case p.Operation == networking.EnvoyFilter_Patch_REMOVE:
			return false
		case isMerge(p.Operation):
			mergePatch(p.Operation, l, p.Value)
		}
	}
	pt.patchListenerFilters(ctx, l)
	removed := map[*listenerv3.FilterChain]bool{}
	for _, fc := range l.GetFilterChains() {
		if !pt.patchFilterChain(ctx, l, fc) {
			removed[fc] = true
		}
	}
	if fc := l.GetDefaultFilterChain(); fc != nil && !pt.patchFilterChain(ctx, l, fc) {
		l.DefaultFilterChain = nil
	}
	for _, p := range pt.patches[networking.EnvoyFilter_FILTER_CHAIN] {
		if p.Operation == networking.EnvoyFilter_Patch_ADD && contextMatch(ctx, p) && pt.listenerMatch(l, p) {
			l.FilterChains = append(l.FilterChains, clonePatch[*listenerv3.FilterChain](p))
		}
	}
	l.FilterChains = slices.DeleteFunc(l.FilterChains, func(fc *listenerv3.FilterChain) bool { return removed[fc] })
	return true
}

// patchListenerFilters applies the LISTENER_FILTER patches to l's
// listener_filters as Istio does: ADD appends, INSERT_FIRST prepends,
// INSERT_BEFORE and INSERT_AFTER place the filter at the one the match's
// listenerFilter names (without one: first and last); REPLACE, REMOVE and
// MERGE act on the filters the listenerFilter names and need one.
func (pt *patcher) patchListenerFilters(ctx networking.EnvoyFilter_PatchContext, l *listenerv3.Listener) {
	for _, p := range pt.patches[networking.EnvoyFilter_LISTENER_FILTER] {
		if !contextMatch(ctx, p) || !pt.listenerMatch(l, p) {
			continue
		}
		name := p.Match.GetListener().GetListenerFilter()
		named := func(f *listenerv3.ListenerFilter) bool { return f.GetName() == name }
		switch p.Operation {
		case networking.EnvoyFilter_Patch_ADD:
			l.ListenerFilters = append(l.ListenerFilters, clonePatch[*listenerv3.ListenerFilter](p))
		case networking.EnvoyFilter_Patch_INSERT_FIRST:
			l.ListenerFilters = slices.Insert(l.ListenerFilters, 0, clonePatch[*listenerv3.ListenerFilter](p))
		case networking.EnvoyFilter_Patch_INSERT_BEFORE:
			if name == "" {
				l.ListenerFilters = slices.Insert(l.ListenerFilters, 0, clonePatch[*listenerv3.ListenerFilter](p))
				continue
			}
			l.ListenerFilters, _ = insertBefore(l.ListenerFilters, clonePatch[*listenerv3.ListenerFilter](p), named)
		case networking.EnvoyFilter_Patch_INSERT_AFTER:
			if name == "" {
				l.ListenerFilters = append(l.ListenerFilters, clonePatch[*listenerv3.ListenerFilter](p))
				continue
			}
			l.ListenerFilters, _ = insertAfter(l.ListenerFilters, clonePatch[*listenerv3.ListenerFilter](p), named)
		case networking.EnvoyFilter_Patch_REPLACE:
			if name != "" {
				l.ListenerFilters = replaceFirst(l.ListenerFilters, clonePatch[*listenerv3.ListenerFilter](p), named)
			}
		case networking.EnvoyFilter_Patch_REMOVE:
			if name != "" {
				l.ListenerFilters = slices.DeleteFunc(l.ListenerFilters, named)
			}
		case networking.EnvoyFilter_Patch_MERGE, networking.EnvoyFilter_Patch_MERGE_AND_REPLACE_LIST:
			if name == "" {
				continue
			}
			v := p.Value.(*listenerv3.ListenerFilter)
			for _, f := range l.ListenerFilters {
				if !named(f) || f.GetTypedConfig() == nil {
					continue // Istio merges only typed configs
				}
				if v.GetTypedConfig() != nil {
					f.ConfigType = &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mergeAny(p.Operation, f.GetTypedConfig(), v.GetTypedConfig())}
				}
			}
		}
	}
}

// listenerMatch is Istio's: the name if given, and the port if given
// (listenerPorts); on Istio's virtual capture listeners the port is a
// filter chain's, so only LISTENER patches check it there.
func (pt *patcher) listenerMatch(l *listenerv3.Listener, p *model.EnvoyPatch) bool {
	m := p.Match.GetListener()
	if m == nil {
		return true
	}
	if m.GetName() != "" && m.GetName() != l.GetName() {
		// Istio's capture listeners stand for Bowline's per-port ones.
		switch {
		case m.GetName() == VirtualInboundListener && !pt.router && pt.inboundListener(l) && p.ApplyTo != networking.EnvoyFilter_LISTENER:
		case m.GetName() == VirtualOutboundListener && !pt.router && !pt.inboundListener(l) && p.ApplyTo != networking.EnvoyFilter_LISTENER:
		default:
			return false
		}
	}
	if isVirtual(l) && p.ApplyTo != networking.EnvoyFilter_LISTENER {
		return true // the port is checked on the filter chain
	}
	if m.GetPortNumber() != 0 && !slices.Contains(pt.listenerPorts(l), m.GetPortNumber()) {
		return false
	}
	return true
}

// isVirtual reports Istio's capture listeners, whose filter chains match
// the original destination port.
func isVirtual(l *listenerv3.Listener) bool {
	return l.GetName() == VirtualInboundListener || l.GetName() == VirtualOutboundListener
}

// chainPort is the workload port an inbound filter chain serves: its
// destination port's (virtualInbound) or its listener's.
func (pt *patcher) chainPort(l *listenerv3.Listener, fc *listenerv3.FilterChain) uint32 {
	port := fc.GetFilterChainMatch().GetDestinationPort().GetValue()
	if port == 0 {
		port = l.GetAddress().GetSocketAddress().GetPortValue()
	}
	return pt.g.inbound(port).target
}

// filterChainMatch is Istio's filter chain match; l is already matched.
func (pt *patcher) filterChainMatch(l *listenerv3.Listener, fc *listenerv3.FilterChain, p *model.EnvoyPatch) bool {
	if lm := p.Match.GetListener(); isVirtual(l) && lm.GetPortNumber() != 0 {
		port := fc.GetFilterChainMatch().GetDestinationPort().GetValue()
		if port != lm.GetPortNumber() && (l.GetName() != VirtualInboundListener || pt.g.inbound(port).target != lm.GetPortNumber()) {
			return false
		}
	}
	m := p.Match.GetListener().GetFilterChain()
	if m == nil {
		return true
	}
	fcm := fc.GetFilterChainMatch()
	if m.GetName() != "" && m.GetName() != fc.GetName() {
		return false
	}
	if m.GetSni() != "" && !slices.Contains(fcm.GetServerNames(), m.GetSni()) {
		return false
	}
	if m.GetTransportProtocol() != "" && fcm.GetTransportProtocol() != m.GetTransportProtocol() {
		return false
	}
	if m.GetApplicationProtocols() != "" {
		for _, ap := range strings.Split(m.GetApplicationProtocols(), ",") {
			if !slices.Contains(fcm.GetApplicationProtocols(), ap) {
				return false
			}
		}
	}
	if dp := m.GetDestinationPort(); dp != 0 {
		port := fcm.GetDestinationPort().GetValue()
		if port == 0 && pt.inboundListener(l) && !pt.router {
			// Bowline's inbound chains are per port: the chain's destination
			// is the workload port behind the listener.
			port = pt.chainPort(l, fc)
		}
		if port != dp {
			return false
		}
	}
	return true
}

// patchFilterChain patches fc of l and reports whether it stays.
func (pt *patcher) patchFilterChain(ctx networking.EnvoyFilter_PatchContext, l *listenerv3.Listener, fc *listenerv3.FilterChain) bool {
	for _, p := range pt.patches[networking.EnvoyFilter_FILTER_CHAIN] {
		if !contextMatch(ctx, p) || !pt.listenerMatch(l, p) || !pt.filterChainMatch(l, fc, p) {
			continue
		}
		switch {
		case p.Operation == networking.EnvoyFilter_Patch_REMOVE:
			return false
		case isMerge(p.Operation):
			v := p.Value.(*listenerv3.FilterChain)
			if ts := v.GetTransportSocket(); ts != nil && fc.GetTransportSocket() != nil && fc.GetTransportSocket().GetName() == ts.GetName() {
				// The same transport socket: its typed configs merge.
				if d, s := fc.GetTransportSocket().GetTypedConfig(), ts.GetTypedConfig(); d != nil && s != nil {
					fc.GetTransportSocket().ConfigType = typedConfigTS(mergeAny(p.Operation, d, s))
				}
				continue
			}
			mergePatch(p.Operation, fc, v)
		}
	}
	pt.patchNetworkFilters(ctx, l, fc)
	return true
}

// hasFilterMatch reports whether p names a network filter.
func hasFilterMatch(p *model.EnvoyPatch) bool {
	return p.Match.GetListener().GetFilterChain().GetFilter() != nil
}

func networkFilterMatch(f *listenerv3.Filter, p *model.EnvoyPatch) bool {
	return !hasFilterMatch(p) || p.Match.GetListener().GetFilterChain().GetFilter().GetName() == f.GetName()
}

// hasSubFilterMatch reports whether p names an HTTP filter.
func hasSubFilterMatch(p *model.EnvoyPatch) bool {
	return hasFilterMatch(p) && p.Match.GetListener().GetFilterChain().GetFilter().GetSubFilter() != nil
}

func httpFilterMatch(f *hcmv3.HttpFilter, p *model.EnvoyPatch) bool {
	return !hasSubFilterMatch(p) || p.Match.GetListener().GetFilterChain().GetFilter().GetSubFilter().GetName() == f.GetName()
}

func (pt *patcher) patchNetworkFilters(ctx networking.EnvoyFilter_PatchContext, l *listenerv3.Listener, fc *listenerv3.FilterChain) {
	for _, p := range pt.patches[networking.EnvoyFilter_NETWORK_FILTER] {
		if !contextMatch(ctx, p) || !pt.listenerMatch(l, p) || !pt.filterChainMatch(l, fc, p) {
			continue
		}
		match := func(f *listenerv3.Filter) bool { return networkFilterMatch(f, p) }
		switch p.Operation {
		case networking.EnvoyFilter_Patch_ADD:
			fc.Filters = append(fc.Filters, clonePatch[*listenerv3.Filter](p))
		case networking.EnvoyFilter_Patch_INSERT_FIRST:
			fc.Filters = slices.Insert(fc.Filters, 0, clonePatch[*listenerv3.Filter](p))
		case networking.EnvoyFilter_Patch_INSERT_AFTER:
			if !hasFilterMatch(p) {
				fc.Filters = append(fc.Filters, clonePatch[*listenerv3.Filter](p))
				continue
			}
			fc.Filters, _ = insertAfter(fc.Filters, clonePatch[*listenerv3.Filter](p), match)
		case networking.EnvoyFilter_Patch_INSERT_BEFORE:
			if !hasFilterMatch(p) {
				fc.Filters = slices.Insert(fc.Filters, 0, clonePatch[*listenerv3.Filter](p))
				continue
			}
			fc.Filters, _ = insertBefore(fc.Filters, clonePatch[*listenerv3.Filter](p), match)
		case networking.EnvoyFilter_Patch_REPLACE:
			if hasFilterMatch(p) {
				fc.Filters = replaceFirst(fc.Filters, clonePatch[*listenerv3.Filter](p), match)
			}
		case networking.EnvoyFilter_Patch_REMOVE:
			if hasFilterMatch(p) {
				fc.Filters = slices.DeleteFunc(fc.Filters, match)
			}
		}
	}
	for _, f := range fc.Filters {
		pt.patchNetworkFilter(ctx, l, fc, f)
	}
}

// patchNetworkFilter applies MERGE patches to f, then, for an HTTP
// connection manager, the HTTP filter and inline route patches.
func (pt *patcher) patchNetworkFilter(ctx networking.EnvoyFilter_PatchContext, l *listenerv3.Listener, fc *listenerv3.FilterChain, f *listenerv3.Filter) {
	for _, p := range pt.patches[networking.EnvoyFilter_NETWORK_FILTER] {
		if !isMerge(p.Operation) || !contextMatch(ctx, p) || !pt.listenerMatch(l, p) || !pt.filterChainMatch(l, fc, p) || !networkFilterMatch(f, p) {
			continue
		}
		if f.GetTypedConfig() == nil {
			continue // as Istio: nothing typed to merge into
		}
		v := p.Value.(*listenerv3.Filter)
		if v.GetName() != "" {
			f.Name = v.GetName()
		}
		if tc := v.GetTypedConfig(); tc != nil {
			f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mergeAny(p.Operation, f.GetTypedConfig(), tc)}
		}
	}
	if f.GetName() == filterHCM && f.GetTypedConfig() != nil {
		pt.patchHCM(ctx, l, fc, f)
	}
}

func (pt *patcher) patchHCM(ctx networking.EnvoyFilter_PatchContext, l *listenerv3.Listener, fc *listenerv3.FilterChain, f *listenerv3.Filter) {
	hcm := &hcmv3.HttpConnectionManager{}
	if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
		return
	}
	for _, p := range pt.patches[networking.EnvoyFilter_HTTP_FILTER] {
		if !contextMatch(ctx, p) || !pt.listenerMatch(l, p) || !pt.filterChainMatch(l, fc, p) || !networkFilterMatch(f, p) {
			continue
		}
		match := func(h *hcmv3.HttpFilter) bool { return httpFilterMatch(h, p) }
		switch p.Operation {
		case networking.EnvoyFilter_Patch_ADD:
			hcm.HttpFilters = append(hcm.HttpFilters, clonePatch[*hcmv3.HttpFilter](p))
		case networking.EnvoyFilter_Patch_INSERT_FIRST:
			hcm.HttpFilters = slices.Insert(hcm.HttpFilters, 0, clonePatch[*hcmv3.HttpFilter](p))
		case networking.EnvoyFilter_Patch_INSERT_AFTER:
			if !hasSubFilterMatch(p) {
				hcm.HttpFilters = append(hcm.HttpFilters, clonePatch[*hcmv3.HttpFilter](p))
				continue
			}
			hcm.HttpFilters, _ = insertAfter(hcm.HttpFilters, clonePatch[*hcmv3.HttpFilter](p), match)
		case networking.EnvoyFilter_Patch_INSERT_BEFORE:
			if !hasSubFilterMatch(p) {
				hcm.HttpFilters = slices.Insert(hcm.HttpFilters, 0, clonePatch[*hcmv3.HttpFilter](p))
				continue
			}
			hcm.HttpFilters, _ = insertBefore(hcm.HttpFilters, clonePatch[*hcmv3.HttpFilter](p), match)
		case networking.EnvoyFilter_Patch_REPLACE:
			if hasSubFilterMatch(p) {
				hcm.HttpFilters = replaceFirst(hcm.HttpFilters, clonePatch[*hcmv3.HttpFilter](p), match)
			}
		case networking.EnvoyFilter_Patch_REMOVE:
			if hasSubFilterMatch(p) {
				hcm.HttpFilters = slices.DeleteFunc(hcm.HttpFilters, match)
			}
		}
	}
	for _, hf := range hcm.HttpFilters {
		for _, p := range pt.patches[networking.EnvoyFilter_HTTP_FILTER] {
			if !isMerge(p.Operation) || !contextMatch(ctx, p) || !pt.listenerMatch(l, p) || !pt.filterChainMatch(l, fc, p) ||
				!networkFilterMatch(f, p) || !httpFilterMatch(hf, p) || hf.GetTypedConfig() == nil {
				continue
			}
			v := p.Value.(*hcmv3.HttpFilter)
			if v.GetName() != "" {
				hf.Name = v.GetName()
			}
			if tc := v.GetTypedConfig(); tc != nil {
				hf.ConfigType = &hcmv3.HttpFilter_TypedConfig{TypedConfig: mergeAny(p.Operation, hf.GetTypedConfig(), tc)}
			}
		}
	}
	// A sidecar's inbound route configuration is inline (Istio patches it
	// in SIDECAR_INBOUND as it builds it).
	if rc := hcm.GetRouteConfig(); rc != nil {
		var ports []uint32
		if pt.inboundListener(l) && !pt.router {
			ports = []uint32{pt.chainPort(l, fc)}
		}
		pt.patchRouteConfiguration(ctx, rc, ports)
	}
	f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: toAny(hcm)}
}

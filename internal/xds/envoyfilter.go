package xds

import (
	"slices"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/model"
)

// applyEnvoyFilters applies the EnvoyFilter patches of proxy to r (docs/policy.md
// "EnvoyFilter"): Istio's semantics on the generated protos, per patch
// context (SIDECAR_INBOUND for a sidecar's inbound listeners, their inline
// routes and inbound clusters, SIDECAR_OUTBOUND for the rest of a sidecar,
// GATEWAY for a router). r is not modified: what is patched is a copy,
// encoded afresh, so the shared outbound part of other sidecars stays as it
// is. No patch reaches load assignments or SDS secrets, RDS route
// configurations only through route patches of their context, clusters
// only through CLUSTER patches: a type no patch reaches is r's, neither
// copied nor encoded again.
func applyEnvoyFilters(snap *model.Snapshot, proxy *model.Proxy, patches model.EnvoyPatches, r Resources) Resources {
	g := newGen(snap, proxy)
	pt := &patcher{g: g, patches: patches, router: proxy.Type == model.Router}
	kept := []string{resourcev3.EndpointType, resourcev3.SecretType}

	listeners := cloneAll[*listenerv3.Listener](r.Listeners)
	if pt.router {
		listeners = pt.patchListeners(networking.EnvoyFilter_GATEWAY, listeners)
	} else {
		var in, out []*listenerv3.Listener
		for _, l := range listeners {
			if pt.inboundListener(l) {
				in = append(in, l)
			} else {
				out = append(out, l)
			}
		}
		listeners = append(pt.patchListeners(networking.EnvoyFilter_SIDECAR_INBOUND, in),
			pt.patchListeners(networking.EnvoyFilter_SIDECAR_OUTBOUND, out)...)
	}
	for _, l := range listeners {
		g.listeners[l.GetName()] = l
	}
	rdsCtx := networking.EnvoyFilter_SIDECAR_OUTBOUND
	if pt.router {
		rdsCtx = networking.EnvoyFilter_GATEWAY
	}
	if !patchesIn(rdsCtx, patches, networking.EnvoyFilter_ROUTE_CONFIGURATION, networking.EnvoyFilter_VIRTUAL_HOST, networking.EnvoyFilter_HTTP_ROUTE) {
		kept = append(kept, resourcev3.RouteType) // e.g. only a sidecar's inline inbound routes are patched
	} else {
		for _, rc := range cloneAll[*routev3.RouteConfiguration](r.Routes) {
			pt.patchRouteConfiguration(rdsCtx, rc, pt.rdsPorts(rc.GetName()))
			g.routes[rc.GetName()] = rc
		}
	}
	if len(patches[networking.EnvoyFilter_CLUSTER]) == 0 {
		kept = append(kept, resourcev3.ClusterType)
	} else {
		for _, c := range pt.patchClusters(cloneAll[*clusterv3.Cluster](r.Clusters)) {
			g.clusters[c.GetName()] = c
		}
	}
	out, byType := g.resources(), r.ByType()
	for _, typ := range kept {
		out.setType(typ, byType[typ], r.Wire[typ], r.Versions[typ])
	}
	return out
}

// patchesIn reports whether a patch of one of the classes applies in ctx.
func patchesIn(ctx networking.EnvoyFilter_PatchContext, patches model.EnvoyPatches, classes ...networking.EnvoyFilter_ApplyTo) bool {
	for _, c := range classes {
		if slices.ContainsFunc(patches[c], func(p *model.EnvoyPatch) bool { return contextMatch(ctx, p) }) {
			return true
		}
	}
	return false
}

func cloneAll[T proto.Message](rs []types.Resource) []T {
	out := make([]T, len(rs))
	for i, r := range rs {
		out[i] = proto.Clone(r).(T)
	}
	return out
}

// patcher applies one proxy's patches.
type patcher struct {
	g       *gen
	patches model.EnvoyPatches
	router  bool
}

// contextMatch is Istio's patch context check.
func contextMatch(ctx networking.EnvoyFilter_PatchContext, p *model.EnvoyPatch) bool {
	return p.Match.GetContext() == ctx || p.Match.GetContext() == networking.EnvoyFilter_ANY
}

// addsIn reports whether an ADD of a whole listener or cluster applies in
// ctx: its own context, or ANY only for a sidecar's outbound and a gateway
// (Istio adds ANY once, not per direction).
func addsIn(ctx networking.EnvoyFilter_PatchContext, p *model.EnvoyPatch) bool {
	if p.Match.GetContext() == networking.EnvoyFilter_ANY {
		return ctx == networking.EnvoyFilter_SIDECAR_OUTBOUND || ctx == networking.EnvoyFilter_GATEWAY
	}
	return p.Match.GetContext() == ctx
}

// inboundListener reports whether l carries a sidecar's inbound traffic.
func (pt *patcher) inboundListener(l *listenerv3.Listener) bool {
	return strings.HasPrefix(l.GetName(), "inbound|") || l.GetName() == VirtualInboundListener
}

// listenerPorts are the ports a listener match's portNumber may name for l:
// its address port; for a sidecar's inbound listener the workload's port
// behind it (Istio's virtualInbound chains match on that port); for a
// gateway the Gateway server port its name carries.
func (pt *patcher) listenerPorts(l *listenerv3.Listener) []uint32 {
	ports := []uint32{l.GetAddress().GetSocketAddress().GetPortValue()}
	switch {
	case pt.router:
		if _, p, ok := strings.Cut(l.GetName(), "_"); ok {
			if n, err := strconv.ParseUint(p, 10, 32); err == nil {
				ports = append(ports, uint32(n))
			}
		}
	case pt.inboundListener(l):
		ports = append(ports, pt.g.inbound(ports[0]).target)
	}
	return ports
}

// rdsPorts are the ports a routeConfiguration match's portNumber may name
// for the RDS route configuration name: the port of a sidecar's "PORT"; for
// a gateway's "http.PORT" the server port and the port it listens on.
func (pt *patcher) rdsPorts(name string) []uint32 {
	if pt.router {
		_, p, ok := strings.Cut(name, ".")
		n, err := strconv.ParseUint(p, 10, 32)
		if !ok || err != nil {
			return nil
		}
		ports := []uint32{uint32(n)}
		for _, m := range pt.g.proxy.GatewayPorts {
			if m.Port == uint32(n) {
				ports = append(ports, m.TargetPort)
			}
		}
		return ports
	}
	if n, err := strconv.ParseUint(name, 10, 32); err == nil {
		return []uint32{uint32(n)}
	}
	return nil
}

// mergePatch is Istio's MERGE: src's set fields into dst, lists appended
// (replaced with MERGE_AND_REPLACE_LIST), map entries and durations
// replaced, submessages merged.
func mergePatch(op networking.EnvoyFilter_Patch_Operation, dst, src proto.Message) {
	if src == nil || dst.ProtoReflect().Descriptor() != src.ProtoReflect().Descriptor() {
		return
	}
	mergeMessage(dst.ProtoReflect(), src.ProtoReflect(), op == networking.EnvoyFilter_Patch_MERGE_AND_REPLACE_LIST)
}

// isMerge reports MERGE and MERGE_AND_REPLACE_LIST.
func isMerge(op networking.EnvoyFilter_Patch_Operation) bool {
	return op == networking.EnvoyFilter_Patch_MERGE || op == networking.EnvoyFilter_Patch_MERGE_AND_REPLACE_LIST
}

var durationName = (&durationpb.Duration{}).ProtoReflect().Descriptor().FullName()

func mergeMessage(dst, src protoreflect.Message, replaceList bool) {
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList():
			l := dst.Mutable(fd).List()
			if replaceList {
				l.Truncate(0)
			}
			sl := v.List()
			for i := 0; i < sl.Len(); i++ {
				if fd.Message() != nil {
					l.Append(protoreflect.ValueOfMessage(proto.Clone(sl.Get(i).Message().Interface()).ProtoReflect()))
				} else {
					l.Append(sl.Get(i))
				}
			}
		case fd.IsMap():
			m := dst.Mutable(fd).Map()
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				if fd.MapValue().Message() != nil {
					mv = protoreflect.ValueOfMessage(proto.Clone(mv.Message().Interface()).ProtoReflect())
				}
				m.Set(k, mv)
				return true
			})
		case fd.Message() != nil && fd.Message().FullName() != durationName:
			mergeMessage(dst.Mutable(fd).Message(), v.Message(), replaceList)
		case fd.Message() != nil:
			dst.Set(fd, protoreflect.ValueOfMessage(proto.Clone(v.Message().Interface()).ProtoReflect()))
		case fd.Kind() == protoreflect.BytesKind:
			dst.Set(fd, protoreflect.ValueOfBytes(slices.Clone(v.Bytes())))
		default:
			dst.Set(fd, v)
		}
		return true
	})
}

// mergeAny merges the config in src into the one in dst when both are of
// the same known type (Istio's MergeAnyWithAny); otherwise dst stays.
func mergeAny(op networking.EnvoyFilter_Patch_Operation, dst, src *anypb.Any) *anypb.Any {
	d, err := dst.UnmarshalNew()
	if err != nil {
		return dst
	}
	s, err := src.UnmarshalNew()
	if err != nil || d.ProtoReflect().Descriptor() != s.ProtoReflect().Descriptor() {
		return dst
	}
	mergePatch(op, d, s)
	return toAny(d)
}

// insertBefore inserts v before the first element match accepts and
// reports whether one did.
func insertBefore[E any](s []E, v E, match func(E) bool) ([]E, bool) {
	i := slices.IndexFunc(s, match)
	if i < 0 {
		return s, false
	}
	return slices.Insert(s, i, v), true
}

// insertAfter inserts v after the first element match accepts.
func insertAfter[E any](s []E, v E, match func(E) bool) ([]E, bool) {
	i := slices.IndexFunc(s, match)
	if i < 0 {
		return s, false
	}
	return slices.Insert(s, i+1, v), true
}

// replaceFirst replaces the first element match accepts by v.
func replaceFirst[E any](s []E, v E, match func(E) bool) []E {
	if i := slices.IndexFunc(s, match); i >= 0 {
		s[i] = v
	}
	return s
}

func clonePatch[T proto.Message](p *model.EnvoyPatch) T {
	return proto.Clone(p.Value).(T)
}

package xds

import (
	"slices"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/model"
)

// patchClusters applies CLUSTER patches: REMOVE and MERGE on the generated
// clusters, then the ADDs of the proxy's contexts.
func (pt *patcher) patchClusters(cs []*clusterv3.Cluster) []*clusterv3.Cluster {
	out := cs[:0]
	for _, c := range cs {
		ctx := networking.EnvoyFilter_SIDECAR_OUTBOUND
		switch {
		case pt.router:
			ctx = networking.EnvoyFilter_GATEWAY
		case strings.HasPrefix(c.GetName(), "inbound|"):
			ctx = networking.EnvoyFilter_SIDECAR_INBOUND
		}
		if pt.patchCluster(ctx, c) {
			out = append(out, c)
		}
	}
	ctxs := []networking.EnvoyFilter_PatchContext{networking.EnvoyFilter_SIDECAR_OUTBOUND, networking.EnvoyFilter_SIDECAR_INBOUND}
	if pt.router {
		ctxs = []networking.EnvoyFilter_PatchContext{networking.EnvoyFilter_GATEWAY}
	}
	for _, ctx := range ctxs {
		for _, p := range pt.patches[networking.EnvoyFilter_CLUSTER] {
			if p.Operation == networking.EnvoyFilter_Patch_ADD && addsIn(ctx, p) {
				out = append(out, clonePatch[*clusterv3.Cluster](p))
			}
		}
	}
	return out
}

// patchCluster patches c and reports whether it stays.
func (pt *patcher) patchCluster(ctx networking.EnvoyFilter_PatchContext, c *clusterv3.Cluster) bool {
	for _, p := range pt.patches[networking.EnvoyFilter_CLUSTER] {
		if !contextMatch(ctx, p) || !pt.clusterMatch(c, p) {
			continue
		}
		switch {
		case p.Operation == networking.EnvoyFilter_Patch_REMOVE:
			return false
		case isMerge(p.Operation):
			v := p.Value.(*clusterv3.Cluster)
			if v.GetTransportSocket() != nil {
				mergeClusterTransportSocket(p.Operation, c, v.GetTransportSocket())
				continue
			}
			mergePatch(p.Operation, c, v)
		}
	}
	return true
}

// mergeClusterTransportSocket is Istio's transport socket merge: into the
// transport_socket_matches entry of the same socket name (none: nothing),
// else into the cluster's socket of that name, else the socket is set.
func mergeClusterTransportSocket(op networking.EnvoyFilter_Patch_Operation, c *clusterv3.Cluster, ts *corev3.TransportSocket) {
	var dst *corev3.TransportSocket
	if ms := c.GetTransportSocketMatches(); len(ms) > 0 {
		for _, m := range ms {
			if m.GetTransportSocket().GetName() == ts.GetName() {
				dst = m.GetTransportSocket()
				break
			}
		}
		if dst == nil {
			return
		}
	} else if c.GetTransportSocket().GetName() == ts.GetName() {
		dst = c.GetTransportSocket()
	}
	if dst == nil {
		c.TransportSocket = cloneTS(ts)
		return
	}
	if d, s := dst.GetTypedConfig(), ts.GetTypedConfig(); d != nil && s != nil {
		dst.ConfigType = typedConfigTS(mergeAny(op, d, s))
	}
}

func cloneTS(ts *corev3.TransportSocket) *corev3.TransportSocket {
	return &corev3.TransportSocket{Name: ts.GetName(), ConfigType: typedConfigTS(ts.GetTypedConfig())}
}

// clusterMatch is Istio's: by name alone if given, else by the parts of
// "direction|port|subset|host". An inbound cluster's service is any
// service the workload serves on its port, and its port may be named by the
// workload port behind it.
func (pt *patcher) clusterMatch(c *clusterv3.Cluster, p *model.EnvoyPatch) bool {
	m := p.Match.GetCluster()
	if m == nil {
		return true
	}
	if m.GetName() != "" {
		return m.GetName() == c.GetName()
	}
	parts := strings.Split(c.GetName(), "|")
	if len(parts) != 4 {
		// Not a service cluster (BlackHoleCluster, ...): only a name matches;
		// a match on its parts fails as Istio's parse of the name does.
		return m.GetSubset() == "" && m.GetService() == "" && m.GetPortNumber() == 0
	}
	n, _ := strconv.ParseUint(parts[1], 10, 32)
	port := uint32(n)
	ports, hosts := []uint32{port}, []string{parts[3]}
	if parts[0] == "inbound" && !pt.router {
		in := pt.g.inbound(port)
		ports = append(ports, in.target)
		hosts = hosts[:0]
		for _, s := range in.services {
			hosts = append(hosts, s.Hostname)
		}
	}
	if m.GetSubset() != "" && m.GetSubset() != parts[2] {
		return false
	}
	if m.GetService() != "" && !slices.Contains(hosts, m.GetService()) {
		return false
	}
	if m.GetPortNumber() != 0 && !slices.Contains(ports, m.GetPortNumber()) {
		return false
	}
	return true
}

package xds

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// buildGRPC generates resources for a proxyless gRPC client, as Istio's grpc
// generator does: per service port an api_listener "<fqdn>:<port>" whose HCM
// takes RDS "<fqdn>:<port>", so `xds:///<fqdn>:<port>` resolves; clusters
// and EDS as for sidecars, restricted to what grpc-go accepts (EDS or
// LOGICAL_DNS; ROUND_ROBIN, LEAST_REQUEST or RING_HASH; no CORS; no
// transport sockets until the xDS certificate provider lands).
func (g *gen) buildGRPC() {
	vss := g.snap.VirtualServicesFor(g.proxy, model.MeshGateway)
	for _, svc := range g.snap.ServicesFor(g.proxy) {
		if svc.Resolution == registry.ResolutionNone {
			continue
		}
		g.buildServiceClusters(svc)
		for _, port := range svc.Ports {
			name := svc.Hostname + ":" + portName(port.Number)
			hcm := g.rdsHCM(name, name)
			g.listeners[name] = &listenerv3.Listener{
				Name:        name,
				ApiListener: &listenerv3.ApiListener{ApiListener: toAny(hcm)},
			}
			rb := g.newRouteBuilder(name)
			rb.add(name, g.domains(svc, port, false), g.serviceRoutes(svc, port, vss))
			g.routes[name] = rb.rc
		}
	}
}

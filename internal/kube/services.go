package kube

import (
	"cmp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/bowline-mesh/bowline/internal/registry"
)

// Labels and annotations Bowline reads from Kubernetes objects, Istio's names.
const (
	// annotationExportTo limits a Service's visibility, like ServiceEntry.exportTo
	// (comma-separated: ".", "*" or namespaces).
	annotationExportTo = "networking.istio.io/exportTo"
	// labelLocality overrides a pod's locality ("region.zone.subzone").
	labelLocality = "istio-locality"
	// labelNetwork names a pod's network.
	labelNetwork = "topology.istio.io/network"
	labelRegion  = "topology.kubernetes.io/region"
	labelZone    = "topology.kubernetes.io/zone"
	labelSubzone = "topology.istio.io/subzone"
	// labelServiceName links an EndpointSlice to its Service.
	labelServiceName = discoveryv1.LabelServiceName
)

// hostname returns the mesh host name of a Service: NAME.NS.svc.DOMAIN.
func hostname(name, namespace, domain string) string {
	return name + "." + namespace + ".svc." + domain
}

// portProtocol returns the protocol Istio selects for a Service port: UDP
// for UDP ports; else appProtocol when it names a protocol Istio knows
// (Kubernetes' "kubernetes.io/h2c" is HTTP2, "kubernetes.io/ws" and "wss"
// are HTTP and HTTPS); else the port name's prefix ("http-web" is HTTP);
// else TCP.
func portProtocol(p corev1.ServicePort) string {
	if p.Protocol == corev1.ProtocolUDP {
		return "UDP"
	}
	if p.AppProtocol != nil {
		switch ap := strings.ToLower(*p.AppProtocol); ap {
		case "kubernetes.io/h2c":
			return "HTTP2"
		case "kubernetes.io/ws":
			return "HTTP"
		case "kubernetes.io/wss":
			return "HTTPS"
		case "http", "http2", "grpc", "grpc-web", "https", "tls", "tcp", "mongo", "mysql", "redis":
			return strings.ToUpper(ap)
		}
	}
	return registry.ProtocolFor("", strings.ToLower(p.Name))
}

// podInfo is what an endpoint takes from its pod and node.
type podInfo struct {
	labels         map[string]string
	serviceAccount string
	locality       string
	network        string
}

// podLookup finds a pod's information by namespace and name.
type podLookup func(namespace, name string) (podInfo, bool)

// nodeLocality returns "region/zone/subzone" from a node's topology labels
// (trailing empty parts dropped).
func nodeLocality(labels map[string]string) string {
	return joinLocality(labels[labelRegion], labels[labelZone], labels[labelSubzone])
}

func joinLocality(region, zone, subzone string) string {
	switch {
	case subzone != "":
		return region + "/" + zone + "/" + subzone
	case zone != "":
		return region + "/" + zone
	}
	return region
}

// podLocality returns a pod's locality: its istio-locality label
// ("region.zone.subzone"), else its node's.
func podLocality(pod *corev1.Pod, node map[string]string) string {
	if l := pod.Labels[labelLocality]; l != "" {
		return strings.ReplaceAll(l, ".", "/")
	}
	return nodeLocality(node)
}

// convertService turns a Service and its EndpointSlices into the
// registry's form. ExternalName Services resolve their external name by
// DNS; headless Services (clusterIP None) pass traffic to the address the
// client dialled (Istio's PASSTHROUGH) and keep their endpoints for
// visibility.
func convertService(svc *corev1.Service, endpointSlices []*discoveryv1.EndpointSlice, domain string, pods podLookup) *registry.Service {
	out := &registry.Service{
		Hostname:   hostname(svc.Name, svc.Namespace, domain),
		Namespace:  svc.Namespace,
		Name:       svc.Name,
		Resolution: registry.ResolutionStatic,
	}
	for _, ip := range svc.Spec.ClusterIPs {
		if ip != corev1.ClusterIPNone && ip != "" {
			out.Addresses = append(out.Addresses, ip)
		}
	}
	if len(out.Addresses) == 0 && svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone {
		out.Addresses = []string{svc.Spec.ClusterIP}
	}
	for _, p := range svc.Spec.Ports {
		port := registry.Port{Name: p.Name, Number: uint32(p.Port), Protocol: portProtocol(p)}
		if p.TargetPort.IntValue() > 0 {
			port.TargetPort = uint32(p.TargetPort.IntValue())
		}
		out.Ports = append(out.Ports, port)
	}
	slicesSortPorts(out.Ports)
	if v := svc.Annotations[annotationExportTo]; v != "" {
		for _, e := range strings.Split(v, ",") {
			if e = strings.TrimSpace(e); e != "" {
				out.ExportTo = append(out.ExportTo, e)
			}
		}
	}
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		out.Resolution = registry.ResolutionDNS
		out.MeshExternal = true
		out.Addresses = nil
		if svc.Spec.ExternalName != "" {
			out.Endpoints = []*registry.Endpoint{{Address: svc.Spec.ExternalName, Namespace: svc.Namespace, Healthy: true}}
		}
		return out
	case svc.Spec.ClusterIP == corev1.ClusterIPNone:
		out.Resolution = registry.ResolutionNone
	}
	out.Endpoints = sliceEndpoints(svc, endpointSlices, pods)
	return out
}

func slicesSortPorts(ps []registry.Port) {
	slices.SortFunc(ps, func(a, b registry.Port) int { return cmp.Compare(a.Number, b.Number) })
}

// sliceEndpoints returns the endpoints of a Service's EndpointSlices, one
// per address (an address in several slices, as during a slice
// hand-over, counts once: ready wins). An endpoint is healthy when it is
// ready (Kubernetes' ready condition: serving and not terminating), or
// when the Service publishes not-ready addresses.
func sliceEndpoints(svc *corev1.Service, eps []*discoveryv1.EndpointSlice, pods podLookup) []*registry.Endpoint {
	byAddr := map[string]*registry.Endpoint{}
	for _, s := range eps {
		if s.AddressType != discoveryv1.AddressTypeIPv4 && s.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		ports := map[string]uint32{}
		for _, p := range s.Ports {
			if p.Port == nil {
				continue
			}
			name := ""
			if p.Name != nil {
				name = *p.Name
			}
			ports[name] = uint32(*p.Port)
		}
		for _, e := range s.Endpoints {
			ready := e.Conditions.Ready == nil || *e.Conditions.Ready
			healthy := ready || svc.Spec.PublishNotReadyAddresses
			for _, addr := range e.Addresses {
				if prev, ok := byAddr[addr]; ok && (prev.Healthy || !healthy) {
					continue
				}
				ep := &registry.Endpoint{Address: addr, Ports: ports, Namespace: svc.Namespace, Healthy: healthy}
				if e.Zone != nil {
					ep.Locality = joinLocality("", *e.Zone, "")
				}
				if ref := e.TargetRef; ref != nil && ref.Kind == "Pod" {
					ns := ref.Namespace
					if ns == "" {
						ns = svc.Namespace
					}
					ep.WorkloadName = ref.Name
					if info, ok := pods(ns, ref.Name); ok {
						ep.Labels = info.labels
						ep.ServiceAccount = info.serviceAccount
						if info.locality != "" {
							ep.Locality = info.locality
						}
						ep.Network = info.network
						ep.Sidecar = info.labels[registry.LabelTLSMode] == registry.TLSModeIstio
					}
				}
				byAddr[addr] = ep
			}
		}
	}
	out := make([]*registry.Endpoint, 0, len(byAddr))
	for _, ep := range byAddr {
		out = append(out, ep)
	}
	slices.SortFunc(out, func(a, b *registry.Endpoint) int {
		if c := strings.Compare(a.Address, b.Address); c != 0 {
			return c
		}
		return strings.Compare(a.WorkloadName, b.WorkloadName)
	})
	return out
}

// podWorkload returns a pod as a workload that ServiceEntry
// workloadSelectors select, or ok=false for pods that serve no traffic
// (no IP yet, finished, or being deleted).
func podWorkload(pod *corev1.Pod, node map[string]string) (registry.Workload, bool) {
	if pod.Status.PodIP == "" || pod.DeletionTimestamp != nil ||
		pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return registry.Workload{}, false
	}
	ready := false
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			ready = c.Status == corev1.ConditionTrue
		}
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	return registry.Workload{
		ID:             "pod/" + pod.Namespace + "/" + pod.Name,
		Name:           pod.Name,
		Namespace:      pod.Namespace,
		Address:        pod.Status.PodIP,
		Labels:         pod.Labels,
		ServiceAccount: sa,
		Locality:       podLocality(pod, node),
		Network:        pod.Labels[labelNetwork],
		Healthy:        ready,
		Pod:            true,
	}, true
}

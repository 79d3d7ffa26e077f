// Package describe explains the mesh configuration in force for one workload
// or service, as `istioctl x describe` does: the services a pod belongs to,
// the DestinationRules and VirtualServices that shape traffic to it (which
// route match sends a request where), the mTLS mode it runs and why, the
// authorization policies that select it and what they allow or deny, and the
// gateways that expose it. It reads the control plane's mesh snapshot, so it
// says what the proxies were sent.
//
// It imports model and registry; it must not import xds, proxy or cli.
package describe

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// Kinds of targets, as the command line names them.
const (
	KindPod      = "pod"
	KindWorkload = "workload"
	KindService  = "service"
)

// ErrNotFound says the target names nothing in the mesh.
var ErrNotFound = errors.New("not found")

// Target is what to describe: a pod (a replica or Kubernetes pod), a
// workload (all replicas of a `bowline up` Workload, or pods of a
// Deployment), or a service. Namespace "" matches any.
type Target struct {
	Kind, Name, Namespace string
}

// Inputs are what a description is made from.
type Inputs struct {
	// Snap is the mesh model in force.
	Snap *model.Snapshot
	// Workloads are the registry's workloads (registered replicas and
	// Kubernetes pods).
	Workloads []registry.Workload
	// Gateways are the connected router proxies (gateways register no
	// workload; they are described by their Gateways).
	Gateways []*model.Proxy
}

// Describe writes the description of t to w. An unknown target is an error
// wrapping ErrNotFound that lists what exists; an ambiguous one an error
// naming the matches.
func Describe(w io.Writer, in Inputs, t Target) error {
	snap, workloads := in.Snap, in.Workloads
	d := &describer{w: w, snap: snap}
	switch t.Kind {
	case KindPod, KindWorkload:
		if gw := findGateway(in.Gateways, t); gw != nil {
			d.gateway(gw)
			return d.err
		}
		pods, err := findPods(workloads, t)
		if err != nil {
			return err
		}
		if t.Kind == KindWorkload && len(pods) > 1 {
			names := make([]string, len(pods))
			for i, p := range pods {
				names[i] = podName(p)
			}
			d.printf("Workload: %s.%s (%d replicas: %s; described as %s, the replicas share labels and policy)\n",
				pods[0].Name, pods[0].Namespace, len(pods), strings.Join(names, ", "), names[0])
		}
		d.pod(pods[0])
	case KindService:
		svc, err := findService(snap, t)
		if err != nil {
			return err
		}
		d.service(svc, workloads)
	default:
		return fmt.Errorf("kind %q: want pod, workload or service", t.Kind)
	}
	return d.err
}

// podName is a workload's pod name: the replica (reviews-v1-0) or the
// Kubernetes pod, from its registration id.
func podName(w registry.Workload) string {
	id := strings.TrimPrefix(w.Key(), "pod/")
	if _, name, ok := strings.Cut(id, "/"); ok {
		return name
	}
	return w.Name
}

func findPods(workloads []registry.Workload, t Target) ([]registry.Workload, error) {
	var byPod, byWorkload []registry.Workload
	var all []string
	for _, w := range workloads {
		all = append(all, podName(w)+"."+w.Namespace)
		if t.Namespace != "" && w.Namespace != t.Namespace {
			continue
		}
		if podName(w) == t.Name {
			byPod = append(byPod, w)
		}
		// A `bowline up` Workload's name, or a Kubernetes pod's owner
		// (pods are named OWNER-HASH[-HASH]).
		if w.Name == t.Name || w.Pod && strings.HasPrefix(w.Name, t.Name+"-") {
			byWorkload = append(byWorkload, w)
		}
	}
	match := byPod
	if t.Kind == KindWorkload || len(match) == 0 {
		match = byWorkload
	}
	slices.SortFunc(match, func(a, b registry.Workload) int { return strings.Compare(a.Key(), b.Key()) })
	if len(match) == 0 {
		slices.Sort(all)
		return nil, fmt.Errorf("%s %q: %w; pods: %s", t.Kind, qualified(t), ErrNotFound, strings.Join(all, ", "))
	}
	if t.Namespace == "" {
		ns := map[string]bool{}
		for _, w := range match {
			ns[w.Namespace] = true
		}
		if len(ns) > 1 {
			return nil, fmt.Errorf("%s %q is in namespaces %s; name one (NAME.NAMESPACE)", t.Kind, t.Name, strings.Join(slices.Sorted(maps.Keys(ns)), ", "))
		}
	}
	return match, nil
}

func qualified(t Target) string {
	if t.Namespace == "" {
		return t.Name
	}
	return t.Name + "." + t.Namespace
}

// findService finds a service by hostname, by NAME.NAMESPACE (its
// defining object or the hostname's first labels), or by name alone.
func findService(snap *model.Snapshot, t Target) (*registry.Service, error) {
	var match []*registry.Service
	var all []string
	for _, svc := range snap.Services() {
		all = append(all, svc.Hostname)
		short, rest, _ := strings.Cut(svc.Hostname, ".")
		hostNS, _, _ := strings.Cut(rest, ".")
		switch {
		case svc.Hostname == t.Name && t.Namespace == "", svc.Hostname == t.Name+"."+t.Namespace:
		case t.Namespace != "" && svc.Hostname == t.Name+"."+t.Namespace+".svc."+snap.Domain():
		case t.Namespace != "" && svc.Namespace == t.Namespace && (svc.Name == t.Name || short == t.Name && hostNS == t.Namespace):
		case t.Namespace == "" && (svc.Name == t.Name || short == t.Name):
		default:
			continue
		}
		match = append(match, svc)
	}
	switch len(match) {
	case 0:
		return nil, fmt.Errorf("service %q: %w; services: %s", qualified(t), ErrNotFound, strings.Join(all, ", "))
	case 1:
		return match[0], nil
	}
	names := make([]string, len(match))
	for i, s := range match {
		names[i] = s.Hostname
	}
	return nil, fmt.Errorf("service %q matches %s; name one by hostname or NAME.NAMESPACE", qualified(t), strings.Join(names, ", "))
}

// describer writes one description, keeping the first write error.
type describer struct {
	w    io.Writer
	snap *model.Snapshot
	err  error
}

func (d *describer) printf(format string, args ...any) {
	if d.err == nil {
		_, d.err = fmt.Fprintf(d.w, format, args...)
	}
}

const rule = "--------------------\n"

// proxyOf is the sidecar of w as the model sees a connected one.
func proxyOf(w registry.Workload) *model.Proxy {
	p := &model.Proxy{Type: model.SidecarProxy, Namespace: w.Namespace, WorkloadName: w.Name, Labels: w.Labels, ServiceAccount: w.ServiceAccount}
	if w.Address != "" {
		p.IPs = []string{w.Address}
	}
	return p
}

func (d *describer) pod(w registry.Workload) {
	p := proxyOf(w)
	d.printf("Pod: %s.%s\n", podName(w), w.Namespace)
	td := "cluster.local"
	if mc := d.snap.Mesh(); mc != nil && mc.TrustDomain != "" {
		td = mc.TrustDomain
	}
	d.printf("   Workload: %s, service account %s (spiffe://%s/ns/%s/sa/%s)\n", w.Name, orDefault(w.ServiceAccount), td, w.Namespace, orDefault(w.ServiceAccount))
	d.printf("   Labels: %s\n", labels(w.Labels))
	if len(w.Ports) > 0 {
		var ports []string
		for _, name := range slices.Sorted(maps.Keys(w.Ports)) {
			ports = append(ports, fmt.Sprintf("%d (%s)", containerPort(w, name), name))
		}
		d.printf("   Pod ports: %s\n", strings.Join(ports, ", "))
	}
	if !hasSidecar(w) {
		d.printf("   WARNING: the pod has no sidecar (no %s=%s label): the mesh's policies do not apply to it\n", registry.LabelTLSMode, registry.TLSModeIstio)
	}
	svcs := servicesOf(d.snap, w)
	if len(svcs) == 0 {
		d.printf("   Not an endpoint of any service\n")
	}
	for _, svc := range svcs {
		d.printf(rule)
		d.serviceHeader(svc)
		for _, port := range svc.Ports {
			d.printf("   Port: %s %d/%s targets pod port %d\n", port.Name, port.Number, port.Protocol, endpointPort(svc, w, port))
		}
		dr := d.snap.DestinationRuleFor(p, svc.Hostname, svc.Namespace)
		d.destinationRule(dr, svc, &w)
		d.virtualServices(p, svc, dr, &w)
	}
	d.printf(rule)
	d.mtls(w, svcs)
	d.authz(w)
	d.exposure(svcs)
}

func orDefault(sa string) string {
	if sa == "" {
		return "default"
	}
	return sa
}

func containerPort(w registry.Workload, name string) uint32 {
	if n, ok := w.ContainerPorts[name]; ok && n != 0 {
		return n
	}
	return w.Ports[name]
}

// endpointPort is the port of w that service port receives on, as a pod port.
func endpointPort(svc *registry.Service, w registry.Workload, port registry.Port) uint32 {
	for _, e := range svc.Endpoints {
		if isEndpointOf(e, w) {
			if n, ok := e.ContainerPorts[port.Name]; ok && n != 0 {
				return n
			}
			return e.PortFor(port)
		}
	}
	return port.Number
}

func labels(l map[string]string) string {
	if len(l) == 0 {
		return "(none)"
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		out = append(out, k+"="+l[k])
	}
	return strings.Join(out, ", ")
}

func isEndpointOf(e *registry.Endpoint, w registry.Workload) bool {
	return e.WorkloadName == w.Name && e.Namespace == w.Namespace && e.Address == w.Address
}

// servicesOf lists the services w is an endpoint of, by hostname.
func servicesOf(snap *model.Snapshot, w registry.Workload) []*registry.Service {
	var out []*registry.Service
	for _, svc := range snap.Services() {
		for _, e := range svc.Endpoints {
			if isEndpointOf(e, w) {
				out = append(out, svc)
				break
			}
		}
	}
	return out
}

func (d *describer) serviceHeader(svc *registry.Service) {
	ext := ""
	if svc.MeshExternal {
		ext = ", MESH_EXTERNAL"
	}
	d.printf("Service: %s (%s/%s%s)\n", svc.Hostname, svc.Namespace, svc.Name, ext)
}

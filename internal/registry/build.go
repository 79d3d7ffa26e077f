package registry

import (
	"cmp"
	"maps"
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/config"
)

// Build turns the ServiceEntry and WorkloadEntry objects among objs, and the
// registered workloads, into a View. Other kinds are ignored. Input is
// assumed validated (see internal/config/validation); Build only skips what it
// cannot use. It is a pure function.
func Build(objs []*config.Object, workloads []Workload) *View {
	v, _ := build(objs, workloads, nil, nil, nil)
	return v
}

// builtEntry is what one ServiceEntry object gave, kept by the Registry so
// that the next View reuses the services of entries whose inputs did not
// change (their *Service values stay the same, so caches keyed by them
// downstream stay warm).
type builtEntry struct {
	services []*Service
	selects  bool // has a workloadSelector: depends on workloads and WorkloadEntries
}

// build is Build reusing the entries of prev (what the last build gave per
// ServiceEntry object) that stale does not reject, with extra (already
// built services, from Kubernetes) added as they are.
func build(objs []*config.Object, workloads []Workload, prev map[*config.Object]builtEntry,
	stale func(o *config.Object, b builtEntry) bool, extra []*Service) (*View, map[*config.Object]builtEntry) {
	var entries []*config.Object
	var wes []*config.Object
	for _, o := range objs {
		switch o.Spec.(type) {
		case *networking.ServiceEntry:
			entries = append(entries, o)
		case *networking.WorkloadEntry:
			wes = append(wes, o)
		}
	}
	config.SortObjects(entries)
	config.SortObjects(wes)
	idx := &workloadIndex{ws: sortedByKey(workloads)}
	services := make([]*Service, 0, len(entries)+len(extra))
	services = append(services, extra...)
	built := make(map[*config.Object]builtEntry, len(entries))
	for _, o := range entries {
		b, ok := prev[o]
		if !ok || stale(o, b) {
			se := o.Spec.(*networking.ServiceEntry)
			b = builtEntry{services: fromServiceEntry(o, wes, idx), selects: se.GetWorkloadSelector() != nil}
		}
		built[o] = b
		services = append(services, b.services...)
	}
	return NewView(services), built
}

// sortedByKey returns the workloads sorted by Key, computing each key once.
func sortedByKey(workloads []Workload) []Workload {
	type keyed struct {
		key string
		w   *Workload
	}
	ks := make([]keyed, len(workloads))
	for i := range workloads {
		ks[i] = keyed{workloads[i].Key(), &workloads[i]}
	}
	slices.SortFunc(ks, func(a, b keyed) int { return strings.Compare(a.key, b.key) })
	out := make([]Workload, len(ks))
	for i, k := range ks {
		out[i] = *k.w
	}
	return out
}

// workloadIndex finds the workloads a selector picks without scanning
// them all: posting lists by namespace and label, built on first use.
type workloadIndex struct {
	ws     []Workload // sorted by key
	byNS   map[string][]int
	byPair map[string][]int // "ns\x00key=value" -> indexes into ws, ascending
}

// selected returns the workloads in ns whose labels match sel, in key order.
func (x *workloadIndex) selected(ns string, sel map[string]string) []Workload {
	if x.byNS == nil {
		x.byNS, x.byPair = map[string][]int{}, map[string][]int{}
		for i, w := range x.ws {
			x.byNS[w.Namespace] = append(x.byNS[w.Namespace], i)
			for k, v := range w.Labels {
				key := w.Namespace + "\x00" + k + "=" + v
				x.byPair[key] = append(x.byPair[key], i)
			}
		}
	}
	cand := x.byNS[ns]
	for k, v := range sel {
		if l := x.byPair[ns+"\x00"+k+"="+v]; len(l) < len(cand) {
			cand = l
		}
	}
	var out []Workload
	for _, i := range cand {
		if w := x.ws[i]; w.Namespace == ns && LabelsMatch(sel, w.Labels) {
			out = append(out, w)
		}
	}
	return out
}

func fromServiceEntry(o *config.Object, wes []*config.Object, idx *workloadIndex) []*Service {
	se := o.Spec.(*networking.ServiceEntry)
	ns := o.Meta.Namespace
	var ports []Port
	for _, p := range se.GetPorts() {
		ports = append(ports, Port{Name: p.GetName(), Number: p.GetNumber(),
			Protocol: ProtocolFor(p.GetProtocol(), p.GetName()), TargetPort: p.GetTargetPort()})
	}
	slices.SortFunc(ports, func(a, b Port) int { return cmp.Compare(a.Number, b.Number) })

	res := ResolutionStatic
	switch se.GetResolution() {
	case networking.ServiceEntry_DNS:
		res = ResolutionDNS
	case networking.ServiceEntry_DNS_ROUND_ROBIN:
		res = ResolutionDNSRoundRobin
	case networking.ServiceEntry_NONE:
		res = ResolutionNone
	}

	var eps []*Endpoint
	for _, we := range se.GetEndpoints() {
		eps = append(eps, fromWorkloadEntry("", ns, we))
	}
	if sel := se.GetWorkloadSelector().GetLabels(); se.GetWorkloadSelector() != nil {
		for _, w := range wes {
			if w.Meta.Namespace != ns {
				continue
			}
			we := w.Spec.(*networking.WorkloadEntry)
			if LabelsMatch(sel, we.GetLabels()) {
				eps = append(eps, fromWorkloadEntry(w.Meta.Name, ns, we))
			}
		}
		for _, w := range idx.selected(ns, sel) {
			eps = append(eps, fromWorkload(w))
		}
	}

	var out []*Service
	for _, host := range se.GetHosts() {
		hostEps := eps
		if res == ResolutionDNS || res == ResolutionDNSRoundRobin {
			if len(hostEps) == 0 {
				// A DNS entry without endpoints resolves its own host name.
				hostEps = []*Endpoint{{Address: host, Namespace: ns, Healthy: true}}
			}
		}
		if res == ResolutionNone {
			hostEps = nil
		}
		sorted := slices.Clone(hostEps)
		slices.SortStableFunc(sorted, func(a, b *Endpoint) int {
			if c := strings.Compare(a.Address, b.Address); c != 0 {
				return c
			}
			return strings.Compare(a.WorkloadName, b.WorkloadName)
		})
		out = append(out, &Service{
			Hostname:     host,
			Namespace:    ns,
			Name:         o.Meta.Name,
			Addresses:    slices.Clone(se.GetAddresses()),
			Ports:        ports,
			Resolution:   res,
			MeshExternal: se.GetLocation() == networking.ServiceEntry_MESH_EXTERNAL,
			ExportTo:     slices.Clone(se.GetExportTo()),
			Endpoints:    sorted,
		})
	}
	return out
}

func fromWorkloadEntry(name, ns string, we *networking.WorkloadEntry) *Endpoint {
	return &Endpoint{
		Address:        we.GetAddress(),
		Ports:          maps.Clone(we.GetPorts()),
		Labels:         maps.Clone(we.GetLabels()),
		WorkloadName:   name,
		Namespace:      ns,
		ServiceAccount: we.GetServiceAccount(),
		Locality:       we.GetLocality(),
		Network:        we.GetNetwork(),
		Weight:         we.GetWeight(),
		Healthy:        true,
		Sidecar:        we.GetLabels()[LabelTLSMode] == TLSModeIstio,
	}
}

func fromWorkload(w Workload) *Endpoint {
	return &Endpoint{
		Address:        w.Address,
		Ports:          maps.Clone(w.Ports),
		ContainerPorts: maps.Clone(w.ContainerPorts),
		Labels:         maps.Clone(w.Labels),
		WorkloadName:   w.Name,
		Namespace:      w.Namespace,
		ServiceAccount: w.ServiceAccount,
		Locality:       w.Locality,
		Network:        w.Network,
		Weight:         w.Weight,
		Healthy:        w.Healthy,
		Sidecar:        !w.Pod || w.Labels[LabelTLSMode] == TLSModeIstio, // registered workloads run a sidecar
	}
}

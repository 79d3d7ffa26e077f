package registry

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/config"
)

// Log attribute keys.
const (
	attrWorkload = "workload"
	attrHealthy  = "healthy"
)

// ErrNotFound is returned for an unknown registration id.
var ErrNotFound = errors.New("workload not registered")

// Registry holds the inputs of the service registry (config objects and
// registered workloads) and serves immutable Views of them. All methods are
// safe for concurrent use. Every change that can alter a View signals each
// subscriber's channel (coalesced: a subscriber that has not read yet gets
// one pending signal, not one per change).
type Registry struct {
	log *slog.Logger

	mu        sync.Mutex
	objs      []*config.Object
	workloads map[string]Workload
	// kubeServices and pods are what SetKubernetes gave last.
	kubeServices []*Service
	pods         map[string]Workload
	view         *View // cached; nil after a change
	// built is what the last view gave per ServiceEntry object; the next
	// view rebuilds only entries whose inputs changed since: entries that
	// select workloads in a namespace whose WorkloadEntries changed
	// (dirtyNS), or that select a changed workload (changed: old and new
	// versions). Other entries keep their *Service values.
	built   map[*config.Object]builtEntry
	dirtyNS map[string]bool
	changed []Workload
	subs    map[int]chan struct{}
	nextSub int
}

// New returns an empty Registry. It starts nothing.
func New(log *slog.Logger) *Registry {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Registry{log: log, workloads: map[string]Workload{}, pods: map[string]Workload{}, subs: map[int]chan struct{}{}, dirtyNS: map[string]bool{}}
}

// SetKubernetes replaces what a Kubernetes cluster contributes: services
// (from Services and their EndpointSlices, built by the caller) and pods,
// which ServiceEntry workloadSelectors select like registered workloads
// (each with Pod set, keyed by Key()). Neither slice may be modified
// afterwards; services keep their pointers in views, so unchanged ones
// stay cached downstream.
func (r *Registry) SetKubernetes(services []*Service, pods []Workload) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := make(map[string]Workload, len(pods))
	for _, p := range pods {
		k := p.Key()
		next[k] = p
		if prev, ok := r.pods[k]; !ok || !sameWorkload(prev, p) {
			if ok {
				r.changed = append(r.changed, prev)
			}
			r.changed = append(r.changed, p)
		}
	}
	for k, prev := range r.pods {
		if _, ok := next[k]; !ok {
			r.changed = append(r.changed, prev)
		}
	}
	r.pods = next
	r.kubeServices = services
	r.changedLocked()
}

// sameWorkload reports whether a and b would give the same endpoint.
func sameWorkload(a, b Workload) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Namespace == b.Namespace && a.Address == b.Address &&
		maps.Equal(a.Ports, b.Ports) && maps.Equal(a.Labels, b.Labels) && a.ServiceAccount == b.ServiceAccount &&
		a.Locality == b.Locality && a.Network == b.Network && a.Weight == b.Weight && a.Healthy == b.Healthy && a.Pod == b.Pod
}

// SetConfig replaces the config objects the registry reads ServiceEntries and
// WorkloadEntries from (other kinds are ignored). objs must not be modified afterwards.
func (r *Registry) SetConfig(objs []*config.Object) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// WorkloadEntries added, removed or edited make their namespace dirty.
	old := map[*config.Object]bool{}
	for _, o := range r.objs {
		if _, ok := o.Spec.(*networking.WorkloadEntry); ok {
			old[o] = true
		}
	}
	for _, o := range objs {
		if _, ok := o.Spec.(*networking.WorkloadEntry); ok {
			if !old[o] {
				r.dirtyNS[o.Meta.Namespace] = true
			}
			delete(old, o)
		}
	}
	for o := range old {
		r.dirtyNS[o.Meta.Namespace] = true
	}
	r.objs = objs
	r.changedLocked()
}

// Register adds or replaces the workload with w.Key().
func (r *Registry) Register(w Workload) error {
	if w.Namespace == "" || w.Name == "" {
		return fmt.Errorf("register workload %q: name and namespace are required", w.Key())
	}
	if w.Address == "" {
		return fmt.Errorf("register workload %q: address is required", w.Key())
	}
	w.Ports = maps.Clone(w.Ports)
	w.ContainerPorts = maps.Clone(w.ContainerPorts)
	w.Labels = maps.Clone(w.Labels)
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, ok := r.workloads[w.Key()]; ok {
		r.changed = append(r.changed, prev)
	}
	r.changed = append(r.changed, w)
	r.workloads[w.Key()] = w
	r.log.Debug("workload registered", slog.String(attrWorkload, w.Key()), slog.Bool(attrHealthy, w.Healthy))
	r.changedLocked()
	return nil
}

// Deregister removes the workload registered under id.
func (r *Registry) Deregister(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.workloads[id]
	if !ok {
		return fmt.Errorf("deregister %q: %w", id, ErrNotFound)
	}
	r.changed = append(r.changed, w)
	delete(r.workloads, id)
	r.log.Debug("workload deregistered", slog.String(attrWorkload, id))
	r.changedLocked()
	return nil
}

// SetHealth marks a registered workload healthy or not. Setting the health it
// already has is not a change.
func (r *Registry) SetHealth(id string, healthy bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.workloads[id]
	if !ok {
		return fmt.Errorf("set health of %q: %w", id, ErrNotFound)
	}
	if w.Healthy == healthy {
		return nil
	}
	w.Healthy = healthy
	r.workloads[id] = w
	r.changed = append(r.changed, w)
	r.log.Debug("workload health changed", slog.String(attrWorkload, id), slog.Bool(attrHealthy, healthy))
	r.changedLocked()
	return nil
}

// Workloads returns the registered workloads sorted by id.
func (r *Registry) Workloads() []Workload {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := slices.Sorted(maps.Keys(r.workloads))
	out := make([]Workload, 0, len(keys))
	for _, k := range keys {
		out = append(out, r.workloads[k])
	}
	return out
}

// View returns the current services. The View is immutable.
func (r *Registry) View() *View {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.view == nil {
		ws := make([]Workload, 0, len(r.workloads)+len(r.pods))
		for _, w := range r.workloads {
			ws = append(ws, w)
		}
		for _, w := range r.pods {
			ws = append(ws, w)
		}
		changed := &workloadIndex{ws: r.changed}
		r.view, r.built = build(r.objs, ws, r.built, func(o *config.Object, b builtEntry) bool { return r.stale(o, b, changed) }, r.kubeServices)
		clear(r.dirtyNS)
		r.changed = r.changed[:0]
	}
	return r.view
}

// stale reports whether the services built for a ServiceEntry before the
// changes recorded since the last view must be built again.
func (r *Registry) stale(o *config.Object, b builtEntry, changed *workloadIndex) bool {
	if !b.selects {
		return false // an unchanged object with its own endpoints
	}
	ns := o.Meta.Namespace
	if r.dirtyNS[ns] {
		return true
	}
	if len(r.changed) == 0 {
		return false
	}
	sel := o.Spec.(*networking.ServiceEntry).GetWorkloadSelector().GetLabels()
	return len(changed.selected(ns, sel)) > 0
}

// Subscribe returns a channel signalled after every change, and a function
// that ends the subscription (the channel is not closed).
func (r *Registry) Subscribe() (<-chan struct{}, func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := r.nextSub
	r.nextSub++
	ch := make(chan struct{}, 1)
	r.subs[id] = ch
	return ch, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.subs, id)
	}
}

// maxChanged bounds the workload changes recorded between views; past it
// the next view rebuilds every entry.
const maxChanged = 4096

func (r *Registry) changedLocked() {
	r.view = nil
	if len(r.changed) > maxChanged {
		r.built, r.changed = nil, r.changed[:0]
	}
	for _, ch := range r.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

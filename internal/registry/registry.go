package registry

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"

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
	view      *View // cached; nil after a change
	subs      map[int]chan struct{}
	nextSub   int
}

// New returns an empty Registry. It starts nothing.
func New(log *slog.Logger) *Registry {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Registry{log: log, workloads: map[string]Workload{}, subs: map[int]chan struct{}{}}
}

// SetConfig replaces the config objects the registry reads ServiceEntries and
// WorkloadEntries from (other kinds are ignored). objs must not be modified afterwards.
func (r *Registry) SetConfig(objs []*config.Object) {
	r.mu.Lock()
	defer r.mu.Unlock()
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
	w.Labels = maps.Clone(w.Labels)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.workloads[w.Key()] = w
	r.log.Debug("workload registered", slog.String(attrWorkload, w.Key()), slog.Bool(attrHealthy, w.Healthy))
	r.changedLocked()
	return nil
}

// Deregister removes the workload registered under id.
func (r *Registry) Deregister(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.workloads[id]; !ok {
		return fmt.Errorf("deregister %q: %w", id, ErrNotFound)
	}
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
		ws := make([]Workload, 0, len(r.workloads))
		for _, w := range r.workloads {
			ws = append(ws, w)
		}
		r.view = Build(r.objs, ws)
	}
	return r.view
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

func (r *Registry) changedLocked() {
	r.view = nil
	for _, ch := range r.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

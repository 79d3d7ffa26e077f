package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/describe"
	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// Syncz is the body of /debug/syncz.
type Syncz struct {
	// ControlPlane identifies this server (istioctl's ISTIOD column).
	ControlPlane ControlPlane `json:"controlPlane"`
	// Proxies has one entry per connected stream, sorted by proxy id.
	Proxies []ProxyStatus `json:"proxies"`
}

// ControlPlane names a control plane instance and its version.
type ControlPlane struct {
	ID      string `json:"id"`
	Version string `json:"version"`
}

// Configz is the body of /debug/configz.
type Configz struct {
	// Version is the config store's version.
	Version uint64 `json:"version"`
	// MeshVersion is the version of the mesh model built from it ("" before the first build).
	MeshVersion string `json:"meshVersion,omitempty"`
	// MeshInputsAt is when the config and registry of the last pushed mesh were
	// read: changes made before it have been handed to the proxies.
	MeshInputsAt time.Time `json:"meshInputsAt,omitzero"`
	// Domain and RootNamespace are the model's options.
	Domain        string `json:"domain"`
	RootNamespace string `json:"rootNamespace"`
	// Objects lists kind -> "namespace/name" entries, sorted.
	Objects map[string][]string `json:"objects"`
	// Problems of the last read; objects of files with errors stay at their last good version.
	Problems config.Problems `json:"problems"`
	// MeshProblems is configuration the model skipped.
	MeshProblems []string `json:"meshProblems"`
	// MeshConfig is the MeshConfig in force, Istio's defaults applied (absent
	// when neither a ConfigMap istio nor --mesh-config gives one).
	MeshConfig json.RawMessage `json:"meshConfig,omitempty"`
}

// WorkloadRequest is the body of POST /v1/workloads.
type WorkloadRequest struct {
	Name           string            `json:"name"`
	Namespace      string            `json:"namespace"`
	Address        string            `json:"address"`
	Ports          map[string]uint32 `json:"ports,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	ServiceAccount string            `json:"serviceAccount,omitempty"`
	Locality       string            `json:"locality,omitempty"`
	Network        string            `json:"network,omitempty"`
	Weight         uint32            `json:"weight,omitempty"`
	// Healthy defaults to true; register with false to wait for PUT .../health.
	Healthy *bool `json:"healthy,omitempty"`
}

// HealthRequest is the body of PUT /v1/workloads/{namespace}/{name}/health.
type HealthRequest struct {
	Healthy bool `json:"healthy"`
}

// maxBody bounds request bodies of the registration API.
const maxBody = 1 << 20

func (s *Server) debugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/syncz", s.syncz)
	mux.HandleFunc("GET /debug/configz", s.configz)
	mux.HandleFunc("GET /debug/registryz", s.registryz)
	mux.HandleFunc("GET /debug/describez", s.describez)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /ready", s.readyz)
	mux.HandleFunc("POST /v1/workloads", s.register)
	mux.HandleFunc("DELETE /v1/workloads/{namespace}/{name}", s.deregister)
	mux.HandleFunc("PUT /v1/workloads/{namespace}/{name}/health", s.setHealth)
	for pattern, h := range s.cfg.Handlers {
		mux.Handle(pattern, h)
	}
	return mux
}

// SyncStatus returns what /debug/syncz serves.
func (s *Server) SyncStatus() Syncz {
	return Syncz{ControlPlane: ControlPlane{ID: s.cfg.ID, Version: s.cfg.Version}, Proxies: s.tracker.snapshot()}
}

func (s *Server) syncz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.SyncStatus())
}

func (s *Server) configz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.ConfigStatus())
}

// ConfigStatus returns what /debug/configz serves.
func (s *Server) ConfigStatus() Configz {
	snap := s.store.Current()
	out := Configz{Version: snap.Version, Domain: s.cfg.Domain, RootNamespace: s.cfg.RootNamespace,
		Objects: map[string][]string{}, Problems: snap.Problems, MeshProblems: []string{}}
	if out.Problems == nil {
		out.Problems = config.Problems{}
	}
	for _, o := range snap.Objects {
		kind := o.GVK.Kind
		if o.IsGatewayAPI() {
			kind = config.GroupGatewayAPI + "/" + kind
		}
		out.Objects[kind] = append(out.Objects[kind], o.Meta.Namespace+"/"+o.Meta.Name)
		if mc := config.MeshConfigOf(o); mc != nil && (out.MeshConfig == nil || o.GVK.Kind == config.KindMeshConfig) {
			out.MeshConfig, _ = protojson.Marshal(mc)
		}
	}
	s.mu.Lock()
	out.MeshInputsAt = s.meshInputsAt
	s.mu.Unlock()
	if m := s.currentMesh(); m != nil {
		out.MeshVersion = m.Version()
		out.MeshProblems = append(out.MeshProblems, m.Problems()...)
	}
	return out
}

// registryzService is one service in /debug/registryz.
type registryzService struct {
	Hostname   string               `json:"hostname"`
	Namespace  string               `json:"namespace"`
	Name       string               `json:"name"`
	Resolution string               `json:"resolution"`
	Ports      []registry.Port      `json:"ports"`
	Endpoints  []*registry.Endpoint `json:"endpoints"`
}

func (s *Server) registryz(w http.ResponseWriter, _ *http.Request) {
	var svcs []registryzService
	for _, svc := range s.registry.View().Services() {
		svcs = append(svcs, registryzService{Hostname: svc.Hostname, Namespace: svc.Namespace, Name: svc.Name,
			Resolution: svc.Resolution.String(), Ports: svc.Ports, Endpoints: svc.Endpoints})
	}
	writeJSON(w, http.StatusOK, map[string]any{"services": svcs, "workloads": s.registry.Workloads()})
}

// describez serves `bowline x describe`: the description of the pod,
// workload or service of ?kind=&name=&namespace= in the mesh in force, as
// text.
func (s *Server) describez(w http.ResponseWriter, r *http.Request) {
	m, ok := s.currentMesh().(interface{ Model() *model.Snapshot })
	if !ok {
		http.Error(w, "no mesh model built yet", http.StatusServiceUnavailable)
		return
	}
	q := r.URL.Query()
	t := describe.Target{Kind: q.Get("kind"), Name: q.Get("name"), Namespace: q.Get("namespace")}
	if t.Name == "" {
		http.Error(w, "name: required", http.StatusBadRequest)
		return
	}
	var b strings.Builder
	in := describe.Inputs{Snap: m.Model(), Workloads: s.registry.Workloads(), Gateways: s.tracker.routers()}
	if err := describe.Describe(&b, in, t); err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, describe.ErrNotFound) {
			code = http.StatusNotFound
		}
		http.Error(w, err.Error(), code)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, b.String())
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if !s.ready.Load() {
		http.Error(w, "not ready: no configuration loaded yet", http.StatusServiceUnavailable)
		return
	}
	if s.cfg.ReadyGate != nil && !s.cfg.ReadyGate() {
		http.Error(w, "not ready: a configuration source has not synced yet", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	var req WorkloadRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decode workload: %w", err))
		return
	}
	if problems := req.check(); len(problems) > 0 {
		writeError(w, http.StatusBadRequest, fmt.Errorf("invalid workload: %s", strings.Join(problems, "; ")))
		return
	}
	wl := registry.Workload{Name: req.Name, Namespace: req.Namespace, Address: req.Address, Ports: req.Ports,
		Labels: req.Labels, ServiceAccount: req.ServiceAccount, Locality: req.Locality, Network: req.Network,
		Weight: req.Weight, Healthy: req.Healthy == nil || *req.Healthy}
	if err := s.registry.Register(wl); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	s.log.Info("workload registered", slog.String(attrWorkload, wl.Key()), slog.String(attrAddress, wl.Address))
	writeJSON(w, http.StatusCreated, map[string]string{"id": wl.Key()})
}

// check returns what is wrong with a registration, field by field.
func (req WorkloadRequest) check() []string {
	var out []string
	if req.Name == "" {
		out = append(out, "name: required")
	}
	if req.Namespace == "" {
		out = append(out, "namespace: required")
	}
	if strings.Contains(req.Name, "/") || strings.Contains(req.Namespace, "/") {
		out = append(out, "name, namespace: must not contain '/'")
	}
	if req.Address == "" {
		out = append(out, "address: required")
	}
	names := make([]string, 0, len(req.Ports))
	for name := range req.Ports {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if p := req.Ports[name]; p == 0 || p > 65535 {
			out = append(out, fmt.Sprintf("ports.%s: %d is not a port number", name, p))
		}
	}
	return out
}

func (s *Server) deregister(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("namespace") + "/" + r.PathValue("name")
	if err := s.registry.Deregister(id); err != nil {
		writeError(w, statusFor(err), err)
		return
	}
	s.log.Info("workload deregistered", slog.String(attrWorkload, id))
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) setHealth(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("namespace") + "/" + r.PathValue("name")
	var req HealthRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decode health: %w", err))
		return
	}
	if err := s.registry.SetHealth(id, req.Healthy); err != nil {
		writeError(w, statusFor(err), err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func statusFor(err error) int {
	if errors.Is(err, registry.ErrNotFound) {
		return http.StatusNotFound
	}
	return http.StatusBadRequest
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

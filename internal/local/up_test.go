package local

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// fakeControlPlane serves nothing; the test feeds its store directly.
type fakeControlPlane struct {
	store *config.Store
}

func (f *fakeControlPlane) Run(ctx context.Context) error { <-ctx.Done(); return nil }

func (f *fakeControlPlane) Addresses(context.Context) (net.Addr, net.Addr, bool) {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 15010}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 15014}, true
}

func (f *fakeControlPlane) Store() *config.Store { return f.store }

// fakeRegistrar records registrations.
type fakeRegistrar struct {
	mu        sync.Mutex
	workloads map[string]registry.Workload
}

func (f *fakeRegistrar) Register(w registry.Workload) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.workloads[w.Key()] = w
	return nil
}

func (f *fakeRegistrar) Deregister(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.workloads[id]; !ok {
		return fmt.Errorf("%s: %w", id, registry.ErrNotFound)
	}
	delete(f.workloads, id)
	return nil
}

func (f *fakeRegistrar) SetHealth(string, bool) error { return nil }

func (f *fakeRegistrar) ids() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for id, w := range f.workloads {
		ids = append(ids, fmt.Sprintf("%s(%s)", id, w.Labels["version"]))
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}

func workloadDoc(name, version string, replicas int) string {
	return fmt.Sprintf(`apiVersion: bowline.dev/v1alpha1
kind: Workload
metadata: {name: %s}
spec:
  labels: {app: reviews, version: %s}
  command: ["/bin/sleep", "300"]
  ports: [{name: http, containerPort: 9080}]
  replicas: %d
`, name, version, replicas)
}

// TestUpReconcilesWorkloads: replicas follow the Workload definitions as they
// change, each registered with its sidecar's inbound port, and all of them are
// deregistered on shutdown.
func TestUpReconcilesWorkloads(t *testing.T) {
	dir := t.TempDir()
	fakeProxy := filepath.Join(dir, "fake-proxy")
	if err := os.WriteFile(fakeProxy, []byte("#!/bin/sh\nexec sleep 300\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	store := config.NewStore()
	reg := &fakeRegistrar{workloads: map[string]registry.Workload{}}
	up, err := NewUp(Config{Dir: dir, ProxyBinary: fakeProxy, Logger: quietLogger(), DrainDuration: time.Second}, &fakeControlPlane{store: store}, reg)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(docs ...string) {
		res := config.Parse(filepath.Join(dir, "workloads.yaml"), []byte(strings.Join(docs, "---\n")), config.ParseOptions{})
		if len(res.Problems) > 0 {
			t.Fatal(res.Problems)
		}
		store.Publish(res.Objects, nil, nil)
	}
	waitIDs := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if reg.ids() == want {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("registered = %q, want %q", reg.ids(), want)
	}

	publish(workloadDoc("reviews-v1", "v1", 1))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- up.Run(ctx) }()

	waitIDs("default/reviews-v1-0(v1)")
	// The state file is written right after the replicas start.
	var st *State
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err = ReadState(filepath.Join(dir, ".bowline"))
		if err == nil && len(st.Workloads) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state not written: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(st.Workloads) != 1 || st.Workloads[0].InboundPort == 0 || st.Workloads[0].AppPort == 0 || st.Workloads[0].InboundPort == st.Workloads[0].AppPort {
		t.Errorf("state = %+v", st.Workloads)
	}
	reg.mu.Lock()
	w := reg.workloads["default/reviews-v1-0"]
	reg.mu.Unlock()
	if w.Address != "127.0.0.1" || w.Ports["http"] != st.Workloads[0].InboundPort || w.Name != "reviews-v1" {
		t.Errorf("registered %+v, want address 127.0.0.1, http port = sidecar inbound %d", w, st.Workloads[0].InboundPort)
	}

	publish(workloadDoc("reviews-v1", "v1", 2), workloadDoc("reviews-v2", "v2", 1))
	waitIDs("default/reviews-v1-0(v1),default/reviews-v1-1(v1),default/reviews-v2-0(v2)")

	// Changing a Workload's spec replaces its replicas.
	publish(workloadDoc("reviews-v1", "v1b", 1))
	waitIDs("default/reviews-v1-0(v1b)")

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if got := reg.ids(); got != "" {
		t.Errorf("still registered after shutdown: %s", got)
	}
}

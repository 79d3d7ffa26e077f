package config

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"
)

// Two files in the shape of the routing task's: all-v1 routes every service
// to v1, test-v2 redefines reviews only.
const (
	allV1 = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: productpage}
spec:
  hosts: [productpage]
  http:
  - route:
    - destination: {host: productpage, subset: v1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
`
	testV2 = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: reviews, subset: v2}
  - route:
    - destination: {host: reviews, subset: v1}
`
)

// reviewsSubsets returns the subsets the reviews VirtualService routes to, in order.
func reviewsSubsets(snap *Snapshot) string {
	for _, o := range snap.Objects {
		if o.GVK.Kind != KindVirtualService || o.Meta.Name != "reviews" {
			continue
		}
		var subsets []string
		for _, h := range o.Spec.(*networking.VirtualService).GetHttp() {
			for _, r := range h.GetRoute() {
				subsets = append(subsets, r.GetDestination().GetSubset())
			}
		}
		return strings.Join(subsets, ",")
	}
	return ""
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDirSourceApplySemantics follows the routing task's `kubectl apply`
// steps by copying files into a watched directory.
func TestDirSourceApplySemantics(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The later file sorts first: order comes from when files changed, not their names.
	write("virtual-service-all-v1.yaml", allV1)
	var logs syncBuffer
	store := NewStore()
	src := NewDirSource(DirSourceConfig{Dir: dir, Debounce: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))}, store)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := src.Run(ctx); err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	defer wg.Wait()
	defer cancel()
	waitFor(t, store, "all-v1", func(s *Snapshot) bool { return reviewsSubsets(s) == "v1" })

	// kubectl apply -f virtual-service-reviews-test-v2.yaml
	write("a-virtual-service-reviews-test-v2.yaml", testV2)
	snap := waitFor(t, store, "test-v2 replaces reviews", func(s *Snapshot) bool { return reviewsSubsets(s) == "v2,v1" })
	if len(snap.Objects) != 2 {
		t.Errorf("objects = %d, want productpage and reviews", len(snap.Objects))
	}
	want := filepath.Join(dir, "a-virtual-service-reviews-test-v2.yaml") + ":1: warning: VirtualService default/reviews: replaces the definition at " +
		filepath.Join(dir, "virtual-service-all-v1.yaml") + ":10"
	if got := snap.Problems.Error(); !strings.HasPrefix(got, want) {
		t.Errorf("problems = %q, want a warning starting %q", got, want)
	}
	if snap.Problems.HasErrors() {
		t.Errorf("a redefinition must not be an error: %v", snap.Problems)
	}
	waitForLog(t, &logs, "level=WARN msg=\"config problem\" problem=\""+want)

	// Re-applying all-v1 (an edit: it changed last) makes its reviews win again.
	write("virtual-service-all-v1.yaml", allV1+"\n# applied again\n")
	waitFor(t, store, "all-v1 applied again", func(s *Snapshot) bool { return reviewsSubsets(s) == "v1" })
	write("a-virtual-service-reviews-test-v2.yaml", testV2+"\n# edited\n")
	waitFor(t, store, "test-v2 edited", func(s *Snapshot) bool { return reviewsSubsets(s) == "v2,v1" })

	// An invalid edit of the winning file changes nothing (a failed apply).
	write("virtual-service-all-v1.yaml", strings.Replace(allV1, "subset: v1}\n---", "subset: v1}\n    weight: heavy\n---", 1))
	waitFor(t, store, "invalid edit reported", func(s *Snapshot) bool { return s.Problems.HasErrors() })
	if got := reviewsSubsets(store.Current()); got != "v2,v1" {
		t.Errorf("after an invalid edit of all-v1, reviews routes to %s, want test-v2's v2,v1", got)
	}
	write("virtual-service-all-v1.yaml", allV1+"\n# applied again\n")

	// kubectl delete -f virtual-service-reviews-test-v2.yaml: all-v1's reviews is back.
	if err := os.Remove(filepath.Join(dir, "a-virtual-service-reviews-test-v2.yaml")); err != nil {
		t.Fatal(err)
	}
	snap = waitFor(t, store, "all-v1's reviews back", func(s *Snapshot) bool { return reviewsSubsets(s) == "v1" && len(s.Problems) == 0 })
	if len(snap.Objects) != 2 {
		t.Errorf("objects = %d, want 2", len(snap.Objects))
	}
}

// TestDirSourceFirstReadOrder: at start the modification times say which
// file was applied last; equal times fall back to path order.
func TestDirSourceFirstReadOrder(t *testing.T) {
	for _, tc := range []struct {
		name         string
		older, newer string
		sameTime     bool
		want         string
	}{
		{name: "newer file wins", older: "z-all-v1.yaml", newer: "a-test-v2.yaml", want: "v2,v1"},
		{name: "newer file wins the other way", older: "a-test-v2.yaml", newer: "z-all-v1.yaml", want: "v1"},
		{name: "same time: later path wins", older: "a-all-v1.yaml", newer: "b-test-v2.yaml", sameTime: true, want: "v2,v1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			content := func(name string) string {
				if strings.Contains(name, "all-v1") {
					return allV1
				}
				return testV2
			}
			base := time.Now().Add(-time.Hour).Truncate(time.Second)
			for i, name := range []string{tc.older, tc.newer} {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, []byte(content(name)), 0o644); err != nil {
					t.Fatal(err)
				}
				at := base.Add(time.Duration(i) * time.Minute)
				if tc.sameTime {
					at = base
				}
				if err := os.Chtimes(p, at, at); err != nil {
					t.Fatal(err)
				}
			}
			store := NewStore()
			snap, err := NewDirSource(DirSourceConfig{Dir: dir, Logger: slog.New(slog.DiscardHandler)}, store).Reload()
			if err != nil {
				t.Fatal(err)
			}
			if got := reviewsSubsets(snap); got != tc.want {
				t.Errorf("reviews routes to %q, want %q", got, tc.want)
			}
		})
	}
}

func waitForLog(t *testing.T, logs *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("log lacks %q; log:\n%s", want, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

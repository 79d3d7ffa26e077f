package config

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"
)

func vsWithWeight(w string) string {
	return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: ` + w + `
`
}

// waitFor polls the store until cond holds; it fails the test after a deadline.
func waitFor(t *testing.T, s *Store, what string, cond func(*Snapshot) bool) *Snapshot {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if snap := s.Current(); cond(snap) {
			return snap
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; current: version %d, %d objects, problems %v", what, s.Current().Version, len(s.Current().Objects), s.Current().Problems)
	return nil
}

func weightOf(snap *Snapshot) int32 {
	for _, o := range snap.Objects {
		if vs, ok := o.Spec.(*networking.VirtualService); ok {
			return vs.Http[0].Route[0].Weight
		}
	}
	return -1
}

func TestDirSourceKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "reviews.yaml")
	if err := os.WriteFile(file, []byte(vsWithWeight("100")), 0o644); err != nil {
		t.Fatal(err)
	}
	store := NewStore()
	src := NewDirSource(DirSourceConfig{Dir: dir, Debounce: 20 * time.Millisecond}, store)
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

	waitFor(t, store, "first load", func(s *Snapshot) bool { return weightOf(s) == 100 })

	// An invalid edit is reported and the last good object stays in force.
	if err := os.WriteFile(file, []byte(vsWithWeight("heavy")), 0o644); err != nil {
		t.Fatal(err)
	}
	snap := waitFor(t, store, "problem reported", func(s *Snapshot) bool { return len(s.Problems) > 0 })
	if got := weightOf(snap); got != 100 {
		t.Errorf("weight after invalid edit = %d, want last good 100", got)
	}
	if !strings.Contains(snap.Problems.Error(), "reviews.yaml:9: VirtualService default/reviews: spec.http[0].route[0].weight: expected integer") {
		t.Errorf("problems = %v", snap.Problems)
	}

	// A valid edit applies and clears the problem.
	if err := os.WriteFile(file, []byte(vsWithWeight("90")), 0o644); err != nil {
		t.Fatal(err)
	}
	snap = waitFor(t, store, "valid edit", func(s *Snapshot) bool { return weightOf(s) == 90 })
	if len(snap.Problems) != 0 {
		t.Errorf("problems after fix: %v", snap.Problems)
	}

	// A new file in a new subdirectory is picked up; removing it removes its objects.
	sub := filepath.Join(dir, "more")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let the watcher add the directory before the file appears
	dr := "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec: {host: reviews}\n"
	if err := os.WriteFile(filepath.Join(sub, "dr.yaml"), []byte(dr), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, store, "new file", func(s *Snapshot) bool { return len(s.Objects) == 2 })
	if err := os.RemoveAll(sub); err != nil {
		t.Fatal(err)
	}
	waitFor(t, store, "removed file", func(s *Snapshot) bool { return len(s.Objects) == 1 })
}

// TestDirSourceReadsMovedInFileAtOnce: a file already read and replaced
// by a rename is complete, so it is read without the quiet period (here
// an hour: only the leading edge can apply it).
func TestDirSourceReadsMovedInFileAtOnce(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "reviews.yaml")
	if err := os.WriteFile(file, []byte(vsWithWeight("100")), 0o644); err != nil {
		t.Fatal(err)
	}
	store := NewStore()
	src := NewDirSource(DirSourceConfig{Dir: dir, Debounce: time.Hour}, store)
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
	waitFor(t, store, "first load", func(s *Snapshot) bool { return weightOf(s) == 100 })
	tmp := filepath.Join(dir, ".reviews.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(vsWithWeight("70")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
	waitFor(t, store, "the moved-in file read before the quiet period", func(s *Snapshot) bool { return weightOf(s) == 70 })
}

// TestMovedIn: only a known regular file that was not removed or renamed
// away since the last read counts as moved into place.
func TestMovedIn(t *testing.T) {
	dir := t.TempDir()
	known, fresh, link := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml"), filepath.Join(dir, "c.yaml")
	for _, f := range []string{known, fresh} {
		if err := os.WriteFile(f, []byte(vsWithWeight("100")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(known, link); err != nil {
		t.Fatal(err)
	}
	src := NewDirSource(DirSourceConfig{Dir: dir}, NewStore())
	src.parsed[known], src.parsed[link] = parsedFile{}, parsedFile{}
	tests := []struct {
		name string
		path string
		gone map[string]bool
		want bool
	}{
		{"known file replaced", known, nil, true},
		{"known file removed and created again", known, map[string]bool{known: true}, false},
		{"file never read (a new file being written)", fresh, nil, false},
		{"symlink (a ConfigMap mount)", link, nil, false},
		{"known file gone", filepath.Join(dir, "missing.yaml"), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := src.movedIn(tt.path, tt.gone); got != tt.want {
				t.Errorf("movedIn(%s) = %v, want %v", filepath.Base(tt.path), got, tt.want)
			}
		})
	}
}

func TestStoreSubscribe(t *testing.T) {
	store := NewStore()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := store.Subscribe(ctx)
	store.Publish(nil, nil, nil)
	store.Publish(nil, nil, nil)
	select {
	case <-ch:
	case <-time.After(time.Second):
		t.Fatal("no wake-up after publish")
	}
	if v := store.Current().Version; v != 2 {
		t.Errorf("version = %d, want 2", v)
	}
}

func TestResolveRedefinitions(t *testing.T) {
	a := Parse("a.yaml", []byte("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec: {host: r}\n"), ParseOptions{})
	b := Parse("b.yaml", []byte("apiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\nmetadata: {name: r}\nspec: {host: r}\n"), ParseOptions{})
	objs, problems := resolveRedefinitions(append(a.Objects, b.Objects...))
	if len(objs) != 1 || objs[0].Source.File != "b.yaml" {
		t.Fatalf("kept %v", objs)
	}
	want := "b.yaml:1: warning: DestinationRule default/r: replaces the definition at a.yaml:1 (the file changed last wins, as with kubectl apply); removing this one brings that one back"
	if problems.Error() != want {
		t.Errorf("problem = %q, want %q", problems.Error(), want)
	}
	if problems.HasErrors() {
		t.Errorf("a redefinition is a warning, got an error")
	}
}

func TestStoreUnionOfSources(t *testing.T) {
	parse := func(doc string) []*Object {
		t.Helper()
		res := Parse("", []byte(doc), ParseOptions{})
		if len(res.Problems) > 0 {
			t.Fatal(res.Problems)
		}
		return res.Objects
	}
	files := parse("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\nspec: {host: a}\n")
	cluster := parse("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\nspec: {host: other}\n---\n" +
		"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: b}\nspec: {host: b}\n")
	s := NewStore()
	s.Publish(files, nil, nil)
	snap := s.PublishFrom("kubernetes", cluster, nil, nil)
	var refs []string
	for _, o := range snap.Objects {
		refs = append(refs, o.Ref())
	}
	if got, want := strings.Join(refs, ","), "DestinationRule default/a,DestinationRule default/b"; got != want {
		t.Fatalf("objects %s, want %s", got, want)
	}
	if snap.Objects[0] != files[0] {
		t.Error("the files' copy of default/a is not the one used")
	}
	if got, want := snap.Problems.Error(), "DestinationRule default/a: also given by the config files; that one is used"; got != want {
		t.Errorf("problems %q, want %q", got, want)
	}
	snap = s.PublishFrom("kubernetes", nil, nil, nil)
	if len(snap.Objects) != 1 || snap.Objects[0] != files[0] || len(snap.Problems) != 0 {
		t.Errorf("after the cluster part emptied: %v %v", snap.Objects, snap.Problems)
	}
}

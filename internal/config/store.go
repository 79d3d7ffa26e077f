package config

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// Snapshot is one immutable version of the whole configuration.
type Snapshot struct {
	// Version increases by one with every published change.
	Version uint64
	// Objects are the valid objects in force, sorted by SortObjects.
	Objects []*Object
	// Problems are those of the most recent read. Objects of a file with
	// errors stay at their last good content, so a problem here does not
	// mean the object is missing.
	Problems Problems
	// Skipped are documents of kinds Bowline does not read.
	Skipped []Skipped
}

// Store holds the current configuration snapshot and notifies subscribers of
// new versions. It is safe for concurrent use.
//
// Several sources may feed one store (a directory and a Kubernetes cluster):
// each publishes its own part with PublishFrom, and the snapshot is the union.
type Store struct {
	mu      sync.Mutex
	current *Snapshot
	parts   map[string]part
	subs    map[chan struct{}]struct{}
}

// part is what one source last published.
type part struct {
	objs     []*Object
	problems Problems
	skipped  []Skipped
}

// NewStore returns a store holding an empty snapshot at version 0.
func NewStore() *Store {
	return &Store{current: &Snapshot{}, parts: map[string]part{}, subs: map[chan struct{}]struct{}{}}
}

// Current returns the snapshot in force. Callers must not modify it.
func (s *Store) Current() *Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// Publish makes objs (already validated) the configuration in force, with the
// problems and skipped documents of the read that produced them, and wakes
// subscribers. It returns the new snapshot. It is PublishFrom for the
// unnamed source, the one a store fed by a single source uses.
func (s *Store) Publish(objs []*Object, problems Problems, skipped []Skipped) *Snapshot {
	return s.PublishFrom("", objs, problems, skipped)
}

// PublishFrom replaces what source contributes with objs (already
// validated), problems and skipped, and publishes the union of every
// source's part. An object whose kind/namespace/name another source also
// gives is used from the source whose name sorts first (the unnamed one,
// files, before "kubernetes"); the other copy is reported as a problem.
func (s *Store) PublishFrom(source string, objs []*Object, problems Problems, skipped []Skipped) *Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.parts[source] = part{objs: objs, problems: problems, skipped: skipped}
	var all []*Object
	var allProblems Problems
	var allSkipped []Skipped
	if len(s.parts) == 1 {
		all, allProblems, allSkipped = slices.Clone(objs), problems, skipped
	} else {
		seen := map[Key]string{}
		for _, name := range slices.Sorted(maps.Keys(s.parts)) {
			p := s.parts[name]
			allProblems = append(allProblems, p.problems...)
			allSkipped = append(allSkipped, p.skipped...)
			for _, o := range p.objs {
				if first, ok := seen[o.Key()]; ok {
					allProblems = append(allProblems, Problem{Severity: SeverityError, File: o.Source.File, Line: o.Source.Line,
						Kind: o.GVK.Kind, Namespace: o.Meta.Namespace, Name: o.Meta.Name,
						Message: fmt.Sprintf("also given by %s; that one is used", sourceName(first))})
					continue
				}
				seen[o.Key()] = name
				all = append(all, o)
			}
		}
	}
	SortObjects(all)
	s.current = &Snapshot{Version: s.current.Version + 1, Objects: all, Problems: allProblems, Skipped: allSkipped}
	for ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
	return s.current
}

// Subscribe returns a channel that receives a value after every Publish
// (coalesced: a slow reader sees one pending wake-up, then calls Current).
// The subscription ends when ctx is done.
func (s *Store) Subscribe(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	go func() {
		<-ctx.Done()
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}()
	return ch
}

// sourceName names a source in messages.
func sourceName(source string) string {
	if source == "" {
		return "the config files"
	}
	return source
}

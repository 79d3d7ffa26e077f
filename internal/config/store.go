package config

import (
	"context"
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
type Store struct {
	mu      sync.Mutex
	current *Snapshot
	subs    map[chan struct{}]struct{}
}

// NewStore returns a store holding an empty snapshot at version 0.
func NewStore() *Store {
	return &Store{current: &Snapshot{}, subs: map[chan struct{}]struct{}{}}
}

// Current returns the snapshot in force. Callers must not modify it.
func (s *Store) Current() *Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// Publish makes objs (already validated) the configuration in force, with the
// problems and skipped documents of the read that produced them, and wakes
// subscribers. It returns the new snapshot.
func (s *Store) Publish(objs []*Object, problems Problems, skipped []Skipped) *Snapshot {
	sorted := make([]*Object, len(objs))
	copy(sorted, objs)
	SortObjects(sorted)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.current = &Snapshot{Version: s.current.Version + 1, Objects: sorted, Problems: problems, Skipped: skipped}
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

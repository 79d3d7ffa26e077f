package config

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Validator checks decoded objects and returns those without errors plus the
// located problems (validation.Objects has this shape).
type Validator func(objs []*Object) (valid []*Object, problems Problems)

// DirSource keeps a Store in step with a directory of YAML/JSON files. Every
// change on disk is re-read and validated; a file with errors keeps its last
// good objects in force, and its problems are published with the snapshot.
type DirSource struct {
	dir      string
	store    *Store
	validate Validator
	opts     ParseOptions
	log      *slog.Logger
	debounce time.Duration
	// meshFile is the --mesh-config file ("" for none).
	meshFile string

	// lastGood holds, per file, the objects of its last valid read.
	lastGood map[string][]*Object
	// parsed holds, per file, the last read's bytes and what parsing and
	// validating them gave: a reload re-parses only files whose content
	// changed, and unchanged files keep their *Object values (so caches
	// keyed by them downstream stay warm).
	parsed map[string]parsedFile
	// inForce holds, per file, the objects it contributes now (its last
	// good objects, or the valid ones of a file that never was good).
	inForce map[string][]*Object
	// order is, per file, when its objects in force last changed (a
	// counter): a later file's definition of an object wins.
	order   map[string]uint64
	applied uint64
	// logged holds the problems of the previous read, already logged.
	logged map[string]bool
}

// parsedFile is the result of parsing and validating one file's content.
type parsedFile struct {
	data     []byte
	valid    []*Object
	problems Problems
	skipped  []Skipped
}

// DirSourceConfig configures a DirSource.
type DirSourceConfig struct {
	// Dir is the directory to read and watch, recursively.
	Dir string
	// Validate is applied to each file's objects; nil accepts everything that decodes.
	Validate Validator
	// Options are passed to Parse.
	Options ParseOptions
	// Debounce coalesces bursts of file events: a reload waits until no
	// event came for this long (100ms when zero). A file already read and
	// replaced by a rename (written elsewhere and moved into place) is
	// complete when its event arrives and is read at once.
	Debounce time.Duration
	// Logger receives reload notes; slog.Default() when nil.
	Logger *slog.Logger
	// MeshConfigFile, when set, is a MeshConfig YAML file (istiod's
	// --meshConfig) read and watched beside Dir; it replaces the ConfigMap
	// `istio` of Dir, which is then ignored with a warning.
	MeshConfigFile string
}

// NewDirSource returns a source publishing into store. It starts nothing.
func NewDirSource(cfg DirSourceConfig, store *Store) *DirSource {
	if cfg.Debounce == 0 {
		cfg.Debounce = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Validate == nil {
		cfg.Validate = func(objs []*Object) ([]*Object, Problems) { return objs, nil }
	}
	return &DirSource{dir: cfg.Dir, store: store, validate: cfg.Validate, opts: cfg.Options, log: cfg.Logger, debounce: cfg.Debounce,
		meshFile: cfg.MeshConfigFile, lastGood: map[string][]*Object{}, parsed: map[string]parsedFile{},
		inForce: map[string][]*Object{}, order: map[string]uint64{}}
}

// Reload reads the directory once and publishes the result.
//
// Files are applied as `kubectl apply` would apply them one after another,
// in the order they last changed: an object (kind, namespace, name) defined
// in several files takes the definition of the file whose content changed
// most recently, and removing that file brings the earlier definition back.
// Each redefinition is published as a warning naming both places. At the
// first read the files' modification times give the order (ties: path
// order, the later path applied last, as `kubectl apply -f DIR` does).
func (d *DirSource) Reload() (*Snapshot, error) {
	files, err := configFiles(d.dir)
	if err != nil {
		return nil, err
	}
	if d.meshFile != "" {
		files = slices.DeleteFunc(files, func(f string) bool { return sameFile(f, d.meshFile) })
		files = append(files, d.meshFile)
	}
	var (
		problems Problems
		skipped  []Skipped
		seen     = map[string]bool{}
		inForce  = map[string][]*Object{}
		changed  []appliedFile // files whose objects in force changed in this read
	)
	for _, f := range files {
		seen[f] = true
		data, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) && f == d.meshFile {
			problems = append(problems, Problem{Severity: SeverityError, File: f, Kind: KindMeshConfig, Message: "mesh config file not found; the last good version stays in force"})
			inForce[f] = d.lastGood[f]
			if prev, ok := d.inForce[f]; !ok || !slices.Equal(prev, inForce[f]) {
				changed = append(changed, appliedFile{path: f})
			}
			continue
		}
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed between the walk and the read
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f, err)
		}
		pf, ok := d.parsed[f]
		if !ok || !bytes.Equal(pf.data, data) {
			res := d.parse(f, data)
			valid, vproblems := d.validate(res.Objects)
			pf = parsedFile{data: data, valid: valid, problems: append(res.Problems, vproblems...), skipped: res.Skipped}
			d.parsed[f] = pf
		}
		valid, fileProblems := pf.valid, pf.problems
		skipped = append(skipped, pf.skipped...)
		problems = append(problems, fileProblems...)
		objs := valid
		if fileProblems.HasErrors() {
			if prev, ok := d.lastGood[f]; ok {
				// A failed apply changes nothing: the last good objects stay, in their place.
				d.log.Debug("config file invalid, keeping last good version", slog.String("file", f), slog.Int("problems", len(fileProblems)))
				objs = prev
			} else {
				d.log.Debug("config file invalid, valid objects in it applied", slog.String("file", f), slog.Int("problems", len(fileProblems)))
			}
		} else {
			d.lastGood[f] = valid
		}
		inForce[f] = objs
		if prev, ok := d.inForce[f]; !ok || !slices.Equal(prev, objs) {
			changed = append(changed, appliedFile{path: f, modTime: modTime(f)})
		}
	}
	// Files changed in this read are applied after all others, oldest change first.
	slices.SortStableFunc(changed, func(a, b appliedFile) int {
		if c := a.modTime.Compare(b.modTime); c != 0 {
			return c
		}
		return strings.Compare(a.path, b.path)
	})
	for _, c := range changed {
		d.applied++
		d.order[c.path] = d.applied
	}
	maps.DeleteFunc(d.lastGood, func(f string, _ []*Object) bool { return !seen[f] })
	maps.DeleteFunc(d.parsed, func(f string, _ parsedFile) bool { return !seen[f] })
	maps.DeleteFunc(d.order, func(f string, _ uint64) bool { return inForce[f] == nil })
	d.inForce = inForce

	ordered := slices.Collect(maps.Keys(inForce))
	slices.SortFunc(ordered, func(a, b string) int { return cmp.Compare(d.order[a], d.order[b]) })
	var objs []*Object
	for _, f := range ordered {
		objs = append(objs, inForce[f]...)
	}
	objs, dupProblems := resolveRedefinitions(objs)
	problems = append(problems, dupProblems...)
	d.logNewProblems(problems)
	return d.store.Publish(objs, problems, skipped), nil
}

// appliedFile is a file whose objects in force changed in one read.
type appliedFile struct {
	path    string
	modTime time.Time
}

func modTime(path string) time.Time {
	info, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return info.ModTime()
}

// logNewProblems logs, at WARN, every problem the previous read did not
// have: the user editing files sees each problem once, when it appears
// (docs/adr/0003-warn-for-user-config-problems.md).
func (d *DirSource) logNewProblems(problems Problems) {
	now := make(map[string]bool, len(problems))
	for _, p := range problems {
		s := p.String()
		now[s] = true
		if !d.logged[s] {
			d.log.Warn("config problem", slog.String("problem", s))
		}
	}
	d.logged = now
}

// resolveRedefinitions keeps, of the objects sharing a kind/namespace/name,
// the one applied last (objs are in apply order), and reports each
// redefinition as a warning at the definition in force.
func resolveRedefinitions(objs []*Object) ([]*Object, Problems) {
	last := map[Key]int{}
	for i, o := range objs {
		last[o.Key()] = i
	}
	out := objs[:0:0]
	var problems Problems
	for i, o := range objs {
		w := objs[last[o.Key()]]
		if last[o.Key()] != i {
			problems = append(problems, Problem{Severity: SeverityWarning, File: w.Source.File, Line: w.Source.Line, Kind: w.GVK.Kind, Namespace: w.Meta.Namespace, Name: w.Meta.Name,
				Message: fmt.Sprintf("replaces the definition at %s (the file changed last wins, as with kubectl apply); removing this one brings that one back", o.Source)})
			continue
		}
		out = append(out, o)
	}
	return out, problems
}

// parse reads one file: the --mesh-config file as MeshConfig YAML, any
// other as Istio documents (without its mesh ConfigMap when --mesh-config is set).
func (d *DirSource) parse(f string, data []byte) *Result {
	if d.meshFile != "" && f == d.meshFile {
		obj, problems := ParseMeshConfigFile(f, data, d.opts.meshNamespace())
		res := &Result{Problems: problems}
		if obj != nil {
			res.Objects = []*Object{obj}
		}
		return res
	}
	res := Parse(f, data, d.opts)
	if d.meshFile == "" {
		return res
	}
	res.Objects = slices.DeleteFunc(res.Objects, func(o *Object) bool {
		if o.GVK.Kind != KindConfigMap {
			return false
		}
		res.Problems = append(res.Problems, ProblemFor(o, FieldError{Path: "metadata.name", Warning: true,
			Reason: "ignored: the mesh config file " + d.meshFile + " (--mesh-config) is in force"}))
		return true
	})
	return res
}

// sameFile reports whether a and b name the same file.
func sameFile(a, b string) bool {
	ia, err1 := os.Stat(a)
	ib, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(ia, ib)
}

// Run reads the directory, then watches it until ctx is done. Problems in the
// files never stop it; only a watch failure does.
func (d *DirSource) Run(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", d.dir, err)
	}
	defer w.Close()
	if err := d.watchTree(w); err != nil {
		return err
	}
	if d.meshFile != "" {
		// The directory, not the file: editors and ConfigMap mounts replace files.
		if err := w.Add(filepath.Dir(d.meshFile)); err != nil {
			return fmt.Errorf("watch %s: %w", d.meshFile, err)
		}
	}
	if _, err := d.Reload(); err != nil {
		return err
	}
	var timer *time.Timer
	var fire <-chan time.Time
	// gone holds the files removed or renamed away since the last reload:
	// one created again under that name is being written, not moved in.
	gone := map[string]bool{}
	reload := func() {
		if timer != nil {
			timer.Stop()
		}
		fire = nil
		clear(gone)
		snap, err := d.Reload()
		if err != nil {
			d.log.Warn("config reload failed, keeping current version", slog.String("dir", d.dir), slog.String("error", err.Error()))
			return
		}
		d.log.Info("config reloaded", slog.Uint64("version", snap.Version), slog.Int("objects", len(snap.Objects)), slog.Int("problems", len(snap.Problems)))
	}
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("watch: event channel closed")
			}
			if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				gone[ev.Name] = true
			}
			if ev.Has(fsnotify.Create) {
				if info, err := os.Stat(ev.Name); err == nil && info.IsDir() {
					_ = d.watchTree(w) // a new subdirectory
				}
				if d.movedIn(ev.Name, gone) {
					reload()
					continue
				}
			}
			if timer == nil {
				timer = time.NewTimer(d.debounce)
			} else {
				timer.Reset(d.debounce)
			}
			fire = timer.C
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("watch: error channel closed")
			}
			d.log.Warn("config watch error", slog.String("dir", d.dir), slog.String("error", err.Error()))
		case <-fire:
			reload()
		}
	}
}

// movedIn reports whether a create event for path means a complete file
// was moved into place, so it can be read at once instead of after the
// quiet period: path is a file already read, not removed or renamed away
// since (opening a file that exists to write it raises no create event;
// renaming another file over it, as editors that save atomically do,
// does). Every other event may come from a write in
// progress — a file truncated and not yet rewritten reads as fewer
// objects — and waits for quiet.
func (d *DirSource) movedIn(path string, gone map[string]bool) bool {
	if _, ok := d.parsed[path]; !ok || gone[path] {
		return false
	}
	info, err := os.Lstat(path)
	return err == nil && info.Mode().IsRegular()
}

// watchTree adds the directory and every subdirectory to w.
func (d *DirSource) watchTree(w *fsnotify.Watcher) error {
	return filepath.WalkDir(d.dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() {
			return nil
		}
		if path != d.dir && strings.HasPrefix(e.Name(), ".") {
			return filepath.SkipDir
		}
		if err := w.Add(path); err != nil {
			return fmt.Errorf("watch %s: %w", path, err)
		}
		return nil
	})
}

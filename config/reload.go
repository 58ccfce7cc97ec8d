package config

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/gatehouse/gatehouse/policy/jwks"
)

// Store holds the current Snapshot. Readers take it with one atomic load per request.
type Store struct {
	cur atomic.Pointer[Snapshot]
}

// Current returns the snapshot in force, or nil before the first good load.
func (s *Store) Current() *Snapshot { return s.cur.Load() }

// Reloader rebuilds the snapshot from a file and swaps it in only when the whole new
// configuration compiled; a bad file leaves the old snapshot serving.
type Reloader struct {
	Path  string
	Deps  Deps
	Store *Store
	Log   *slog.Logger
	// OnReload, when set, is told of every attempt (metrics, readiness), one at a time:
	// of a good one once its snapshot is in force, of a failed one while the previous
	// snapshot still is.
	OnReload func(s *Snapshot, err error)
	// OnWatch, when set, is told of the directories Watch watches each time that set
	// changes (at start, after a load that named other files, and when a pattern's
	// directories come or go).
	OnWatch func(dirs []string)

	mu     sync.Mutex // one reload at a time; guards the fields below
	files  []string   // the configuration file and every file it names, sorted
	digest string     // their content when last loaded; "" when unknown
	moved  chan struct{}
}

// Reload loads the file and swaps it in. It returns the load's error, if any; the old
// snapshot then stays.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reload(digest(r.files))
}

// reload loads the configuration; pre is the digest of r.files taken before the load,
// so that a change made while it loads is seen as a change afterwards.
func (r *Reloader) reload(pre string) error {
	s, err := Load(r.Path, r.Deps)
	var used []string
	if err != nil {
		// Keep watching what the running configuration named, and what the rejected one
		// names too, so that a fix to either is seen.
		used = append(filesOf(err), r.files...)
	} else {
		used = s.Files
	}
	r.setFiles(used, pre)
	if err != nil {
		var keep []*jwks.Source
		if cur := r.Store.Current(); cur != nil {
			keep = cur.keys
		}
		r.Deps.Keys.Retain(keep) // what the rejected load started stops
		if r.OnReload != nil {
			r.OnReload(nil, err)
		}
		if r.Log != nil {
			r.Log.Error("configuration rejected; the previous one stays in force", "path", r.Path, "error", err.Error())
		}
		return err
	}
	old := r.Store.cur.Swap(s)
	r.Deps.Keys.Retain(s.keys) // key sets the new configuration no longer names stop
	if r.Log != nil {
		prev := ""
		if old != nil {
			prev = old.Version
		}
		r.Log.Info("configuration loaded", "path", r.Path, "version", s.Version, "previous", prev)
	}
	if r.OnReload != nil {
		r.OnReload(s, nil)
	}
	return nil
}

// setFiles records the files a load read. When they are the files digested before it,
// that digest stands for what was loaded; otherwise it is unknown and the next change
// event reloads.
func (r *Reloader) setFiles(used []string, pre string) {
	next := append([]string{r.Path}, used...)
	slices.Sort(next)
	next = slices.Compact(next)
	if slices.Equal(next, r.files) {
		r.digest = pre
		return
	}
	r.files, r.digest = next, ""
	if r.moved != nil {
		select {
		case r.moved <- struct{}{}:
		default:
		}
	}
}

// reloadIfChanged reloads unless the watched files hold what was last loaded (an event
// that changed nothing: a touch, a chmod, a ..data swap of other files).
func (r *Reloader) reloadIfChanged() {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := digest(r.files)
	if r.digest != "" && d == r.digest {
		return
	}
	_ = r.reload(d) // reported through the log and OnReload
}

// Watch reloads whenever the configuration file or a file it names changes, until ctx
// ends. It watches directories rather than files, so that editors' rename-over and
// Kubernetes ConfigMap and Secret updates (an atomic swap of the ..data symlink) are
// both seen, wherever each file lives. Bursts of events are coalesced over debounce,
// and a reload happens only when the files' content differs from what was loaded.
func (r *Reloader) Watch(ctx context.Context, debounce time.Duration) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch configuration: %w", err)
	}
	defer w.Close()
	r.mu.Lock()
	r.moved = make(chan struct{}, 1)
	moved := r.moved
	r.mu.Unlock()
	ws := &watchSet{w: w, dirs: map[string]bool{}}
	if err := r.sync(ws); err != nil {
		return err
	}
	var timer *time.Timer
	fire := make(chan struct{}, 1)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ws.dirs[ev.Name] && ev.Has(fsnotify.Remove|fsnotify.Rename) {
				delete(ws.dirs, ev.Name) // its watch is gone; the next sync looks for it again
			} else if !ws.relevant(ev.Name) {
				continue
			}
			if timer == nil {
				timer = time.AfterFunc(debounce, func() {
					select {
					case fire <- struct{}{}:
					default:
					}
				})
			} else {
				timer.Reset(debounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			if r.Log != nil {
				r.Log.Warn("configuration watch error", "error", err.Error())
			}
		case <-moved:
			_ = r.sync(ws)
		case <-fire:
			r.reloadIfChanged()
			// Directories may have come or gone (a pattern's matches, a directory
			// deleted and made again): watch what is there now.
			_ = r.sync(ws)
		}
	}
}

// sync makes the watcher watch the directories of the current files. Only the
// configuration file's own directory is required; another that cannot be watched (it
// does not exist yet) is logged.
func (r *Reloader) sync(ws *watchSet) error {
	r.mu.Lock()
	files := slices.Clone(r.files)
	r.mu.Unlock()
	if len(files) == 0 {
		files = []string{r.Path}
	}
	for _, err := range ws.set(files) {
		if r.Log == nil {
			continue
		}
		r.Log.Warn("cannot watch a configuration file's directory; reload with SIGHUP or POST /-/reload", "error", err.Error())
	}
	if !ws.dirs[filepath.Dir(r.Path)] {
		return fmt.Errorf("watch %s: cannot watch its directory", filepath.Dir(r.Path))
	}
	if l := ws.list(); !slices.Equal(l, ws.reported) {
		ws.reported = l
		if r.OnWatch != nil {
			r.OnWatch(l)
		}
	}
	return nil
}

// Set installs a snapshot directly (the embedded demo configuration).
func (s *Store) Set(snap *Snapshot) { s.cur.Store(snap) }

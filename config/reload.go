package config

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
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
	mu       sync.Mutex // one reload at a time
}

// Reload loads the file and swaps it in. It returns the load's error, if any; the old
// snapshot then stays.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, err := Load(r.Path, r.Deps)
	if err != nil {
		if r.OnReload != nil {
			r.OnReload(nil, err)
		}
		if r.Log != nil {
			r.Log.Error("configuration rejected; the previous one stays in force", "path", r.Path, "error", err.Error())
		}
		return err
	}
	old := r.Store.cur.Swap(s)
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

// Watch reloads whenever the configuration file changes, until ctx ends. It watches the
// file's directory rather than the file, so that editors' rename-over and Kubernetes
// ConfigMap updates (an atomic swap of the ..data symlink) are both seen. Bursts of
// events are coalesced.
func (r *Reloader) Watch(ctx context.Context, debounce time.Duration) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch configuration: %w", err)
	}
	defer w.Close()
	dir := filepath.Dir(r.Path)
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	base := filepath.Base(r.Path)
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
			name := filepath.Base(ev.Name)
			if name != base && name != "..data" {
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
		case <-fire:
			_ = r.Reload() // reported through the log and OnReload
		}
	}
}

// Set installs a snapshot directly (the embedded demo configuration).
func (s *Store) Set(snap *Snapshot) { s.cur.Store(snap) }

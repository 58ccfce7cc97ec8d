package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fsnotify/fsnotify"
)

// watchSet is the set of directories a Reloader watches, with the names in each that
// matter: a change to any other entry (the memory store's own file, an editor's swap
// file) is ignored.
type watchSet struct {
	w        *fsnotify.Watcher
	dirs     map[string]bool
	names    map[string][]string // directory → base names or glob patterns
	reported []string            // the directories last told to OnWatch
}

func isGlob(p string) bool { return strings.ContainsAny(p, "*?[") }

// set watches the directories of files and stops watching the others. A directory that
// does not exist (yet, or any more) is watched for from its nearest existing ancestor,
// so that its creation is seen. set returns the directories that could not be watched.
func (ws *watchSet) set(files []string) (errs []error) {
	names := wanted(files)
	for _, d := range slices.Sorted(maps.Keys(names)) {
		if ws.dirs[d] {
			continue
		}
		err := ws.w.Add(d)
		if err == nil {
			ws.dirs[d] = true
			continue
		}
		errs = append(errs, err)
		if errors.Is(err, os.ErrNotExist) {
			ws.watchAbove(d, names)
		}
	}
	for d := range ws.dirs {
		if _, keep := names[d]; !keep {
			_ = ws.w.Remove(d)
			delete(ws.dirs, d)
		}
	}
	ws.names = names
	return errs
}

// watchAbove watches the nearest existing ancestor of the missing directory d for the
// name of its child on the way to d.
func (ws *watchSet) watchAbove(d string, names map[string][]string) {
	for child := d; ; {
		parent := filepath.Dir(child)
		if parent == child {
			return
		}
		names[parent] = append(names[parent], filepath.Base(child))
		if ws.dirs[parent] {
			return
		}
		err := ws.w.Add(parent)
		if err == nil {
			ws.dirs[parent] = true
			return
		}
		names[parent] = names[parent][:len(names[parent])-1]
		if len(names[parent]) == 0 {
			delete(names, parent)
		}
		if !errors.Is(err, os.ErrNotExist) {
			return
		}
		child = parent
	}
}

// wanted maps each directory to watch to the names in it that matter.
func wanted(files []string) map[string][]string {
	names := map[string][]string{}
	add := func(dir, name string) { names[dir] = append(names[dir], name) }
	for _, f := range files {
		dir, base := filepath.Dir(f), filepath.Base(f)
		if isGlob(dir) { // a pattern such as ratelimit/*/x.yaml
			// Each directory it matches now holds files to watch; above the pattern, a
			// new directory that it would match may appear.
			matches, _ := filepath.Glob(dir)
			for _, m := range matches {
				add(m, base)
			}
			for isGlob(dir) {
				dir, base = filepath.Dir(dir), "*"
			}
		}
		add(dir, base)
		// A symbolic link into another directory: its target changes there. Links
		// within the directory (a ConfigMap's ..data) are seen by watching it.
		if t, err := filepath.EvalSymlinks(f); err == nil && !isGlob(f) {
			if td := filepath.Dir(t); td != dir && !strings.HasPrefix(td, dir+string(filepath.Separator)) {
				add(td, filepath.Base(t))
			}
		}
	}
	return names
}

// relevant reports whether an event on name may change a watched file.
func (ws *watchSet) relevant(name string) bool {
	base := filepath.Base(name)
	if strings.HasPrefix(base, "..") { // ..data and its timestamped targets
		return true
	}
	for _, p := range ws.names[filepath.Dir(name)] {
		if p == base {
			return true
		}
		if ok, _ := filepath.Match(p, base); ok {
			return true
		}
	}
	return false
}

func (ws *watchSet) list() []string {
	out := make([]string, 0, len(ws.dirs))
	for d := range ws.dirs {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// digest sums the content of files (each match of a pattern), so that an event which
// changed none of them does not reload. An unreadable file counts by its error kind.
func digest(files []string) string {
	h := sha256.New()
	for _, f := range files {
		names := []string{f}
		if isGlob(f) {
			names, _ = filepath.Glob(f)
		}
		h.Write([]byte(f + "\x00"))
		for _, n := range names {
			h.Write([]byte(n + "\x00"))
			b, err := ReadFile(n, MaxListFileBytes)
			switch {
			case errors.Is(err, os.ErrNotExist):
				h.Write([]byte("\x01absent"))
			case err != nil:
				h.Write([]byte("\x01unreadable"))
			default:
				sum := sha256.Sum256(b)
				h.Write(sum[:])
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

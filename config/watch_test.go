package config

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// reloads counts a Reloader's good and failed loads.
type reloads struct {
	mu           sync.Mutex
	good, failed int
}

func (c *reloads) on(_ *Snapshot, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.failed++
	} else {
		c.good++
	}
}

func (c *reloads) get() (good, failed int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.good, c.failed
}

// watching starts r.Watch and returns once it watches dir, so that a change made next is
// seen (no sleep: the reloader's OnWatch hook says when). The function it returns tells
// whether the watcher now watches a directory.
func watching(t *testing.T, r *Reloader, dir string) (watches func(dir string) bool) {
	t.Helper()
	var mu sync.Mutex
	var latest []string
	r.OnWatch = func(d []string) {
		mu.Lock()
		defer mu.Unlock()
		latest = d
	}
	watches = func(dir string) bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(latest, dir)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Watch(ctx, 20*time.Millisecond) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	waitFor(t, "the watcher to watch "+dir, func() bool {
		select {
		case err := <-done:
			t.Fatalf("watch ended: %v", err)
		default:
		}
		return watches(dir)
	})
	return watches
}

const watchConfig = `apps:
  - name: a
    app_token_sha256: [05c7cd5c50922870dcfe86ad612a8a32ff0ae65eb6d7894a0b852403fbf25767]
    endpoints: ["*"]
    network: {block_file: %s}
endpoints:
  - {name: e, path: /e}
`

// write replaces path's content atomically (a temporary file renamed over it), as
// editors and config management do, so that a watcher never reads a half-written file:
// a truncated file in between would be a change of its own.
func write(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// newWatched writes a configuration in one directory that names a block list in
// another, loads it and starts watching.
func newWatched(t *testing.T, list string) (*Reloader, *reloads) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	write(t, cfg, strings.Replace(watchConfig, "%s", list, 1))
	counts := &reloads{}
	r := &Reloader{Path: cfg, Deps: testDeps(), Store: &Store{}, OnReload: counts.on}
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	watching(t, r, filepath.Dir(list))
	return r, counts
}

// TestWatchReferencedFileElsewhere: a file the configuration names, in another
// directory, is watched: a good change reloads, a bad one keeps the running snapshot and
// counts a failure.
func TestWatchReferencedFileElsewhere(t *testing.T) {
	list := filepath.Join(t.TempDir(), "blocked.txt")
	write(t, list, "192.0.2.1\n")
	r, counts := newWatched(t, list)
	first := r.Store.Current()

	write(t, list, "192.0.2.1\n198.51.100.7\n")
	waitFor(t, "a reload after the block list changed", func() bool { g, _ := counts.get(); return g == 2 })
	second := r.Store.Current()
	if second == first {
		t.Fatal("the snapshot was not replaced")
	}

	write(t, list, "not-an-address\n")
	waitFor(t, "the bad block list to be rejected", func() bool { _, f := counts.get(); return f == 1 })
	if r.Store.Current() != second {
		t.Fatal("a bad block list replaced the running configuration")
	}
}

// TestWatchReferencedSecretSwap: a file mounted from a Kubernetes Secret (a symlink
// through ..data, swapped atomically) reloads when the Secret changes.
func TestWatchReferencedSecretSwap(t *testing.T) {
	cm := &configMapDir{t: t, dir: t.TempDir(), name: "blocked.txt"}
	cm.publish([]byte("192.0.2.1\n"))
	_, counts := newWatched(t, filepath.Join(cm.dir, "blocked.txt"))

	cm.publish([]byte("198.51.100.7\n"))
	waitFor(t, "a reload after the ..data swap", func() bool { g, _ := counts.get(); return g == 2 })

	cm.publish([]byte("10.0.0.0/33\n"))
	waitFor(t, "the bad revision to be rejected", func() bool { _, f := counts.get(); return f == 1 })
}

// TestWatchIgnoresUnchangedContent: an event that leaves every watched file as it was
// (a rewrite with the same bytes) does not reload; the next real change does.
func TestWatchIgnoresUnchangedContent(t *testing.T) {
	list := filepath.Join(t.TempDir(), "blocked.txt")
	write(t, list, "192.0.2.1\n")
	r, counts := newWatched(t, list)
	_ = r
	write(t, list, "192.0.2.1\n") // same content
	write(t, list, "192.0.2.2\n") // then a change: exactly one reload for both
	waitFor(t, "a reload", func() bool { g, _ := counts.get(); return g >= 2 })
	r.reloadIfChanged() // nothing changed since: no load
	if g, f := counts.get(); g != 2 || f != 0 {
		t.Fatalf("%d good and %d failed loads, want 2 and 0", g, f)
	}
}

// TestReloadRecordsFiles: a load records every file the configuration names, with its
// path resolved against the configuration's directory.
func TestReloadRecordsFiles(t *testing.T) {
	s, err := Load(filepath.Join("testdata", "device", "good.yaml"), Deps{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("testdata", "device")
	want := []string{
		filepath.Join(dir, "allowed-devices.txt"),
		filepath.Join(dir, "good-ips.txt"),
		filepath.Join(dir, "good.key"),
		filepath.Join(dir, "keys.json"),
	}
	if !slices.Equal(s.Files, want) {
		t.Fatalf("files %q, want %q", s.Files, want)
	}
	// A failed load names its files too, so that a fix to one of them is seen.
	_, err = Load(filepath.Join("testdata", "device", "network_file_missing.yaml"), Deps{Offline: true})
	var le *LoadError
	if !errors.As(err, &le) || !slices.Equal(le.Files, []string{filepath.Join(dir, "nope.txt")}) {
		t.Fatalf("failed load: %v, files %v", err, le)
	}
}

// TestVersionCoversReferencedFiles: the version names the content of every file the
// configuration reads, not only the main file's bytes, so that replicas serving
// different block lists (or keys) show different versions.
func TestVersionCoversReferencedFiles(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "blocked.txt")
	cfg := filepath.Join(dir, "config.yaml")
	write(t, list, "203.0.113.7\n")
	write(t, cfg, strings.Replace(watchConfig, "%s", list, 1))
	load := func() *Snapshot {
		t.Helper()
		s, err := Load(cfg, testDeps())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, same := load(), load()
	if a.Version != same.Version {
		t.Fatalf("the same files gave versions %s and %s", a.Version, same.Version)
	}
	write(t, list, "203.0.113.8\n")
	b := load()
	if b.Version == a.Version {
		t.Fatalf("the block list changed, the version %s did not", a.Version)
	}
	if len(b.Version) != 12 {
		t.Fatalf("version %q: want 12 hex digits", b.Version)
	}
}

// TestWatchPatternWithDirectoryWildcard: a rate-limit file matched by a pattern whose
// directory is a wildcard (ratelimit/*/domain.yaml, one ConfigMap per team) is watched in
// its own directory: a change to it reloads, and so does a change in a team directory
// added after the watch started.
func TestWatchPatternWithDirectoryWildcard(t *testing.T) {
	root := t.TempDir()
	domain := func(name string, n int) string {
		return fmt.Sprintf("domain: %s\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, requests_per_unit: %d}\n", name, n)
	}
	if err := os.MkdirAll(filepath.Join(root, "rl", "a"), 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(root, "rl", "a", "domain.yaml"), domain("a", 1))
	cfg := filepath.Join(root, "config.yaml")
	write(t, cfg, "rate_limit_service: {files: ["+filepath.Join(root, "rl", "*", "domain.yaml")+"]}\n")
	counts := &reloads{}
	r := &Reloader{Path: cfg, Deps: testDeps(), Store: &Store{}, OnReload: counts.on}
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	watches := watching(t, r, filepath.Join(root, "rl", "a"))

	write(t, filepath.Join(root, "rl", "a", "domain.yaml"), domain("a", 2))
	waitFor(t, "a reload after a matched file changed", func() bool { g, _ := counts.get(); return g == 2 })

	// A new team directory appears whole (as a volume is mounted or renamed into place).
	staged := filepath.Join(t.TempDir(), "b")
	if err := os.Mkdir(staged, 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(staged, "domain.yaml"), domain("b", 1))
	if err := os.Rename(staged, filepath.Join(root, "rl", "b")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a reload after a team directory was added", func() bool { g, _ := counts.get(); return g == 3 })
	waitFor(t, "the new team directory to be watched", func() bool { return watches(filepath.Join(root, "rl", "b")) })
	write(t, filepath.Join(root, "rl", "b", "domain.yaml"), domain("b", 2))
	waitFor(t, "a reload after the new team's file changed", func() bool { g, _ := counts.get(); return g == 4 })
}

// TestWatchDirectoryDeletedAndMadeAgain: a directory of referenced files that is deleted
// (the load then fails, the running configuration stays) and made again is watched
// again: its return reloads, and so does a change made in it afterwards. The
// configuration lives elsewhere, or in the directory above (which is then watched too).
func TestWatchDirectoryDeletedAndMadeAgain(t *testing.T) {
	for _, beside := range []bool{false, true} {
		t.Run(fmt.Sprintf("configuration in the parent %v", beside), func(t *testing.T) {
			parent := t.TempDir()
			lists := filepath.Join(parent, "lists")
			if err := os.Mkdir(lists, 0o700); err != nil {
				t.Fatal(err)
			}
			list := filepath.Join(lists, "blocked.txt")
			write(t, list, "192.0.2.1\n")
			cfg := filepath.Join(t.TempDir(), "config.yaml")
			if beside {
				cfg = filepath.Join(parent, "config.yaml")
			}
			write(t, cfg, strings.Replace(watchConfig, "%s", list, 1))
			counts := &reloads{}
			r := &Reloader{Path: cfg, Deps: testDeps(), Store: &Store{}, OnReload: counts.on}
			if err := r.Reload(); err != nil {
				t.Fatal(err)
			}
			watches := watching(t, r, lists)

			if err := os.RemoveAll(lists); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the load without the directory to fail", func() bool { _, f := counts.get(); return f >= 1 })
			waitFor(t, "the directory's watch to be dropped", func() bool { return !watches(lists) && watches(parent) })

			staged := filepath.Join(t.TempDir(), "lists")
			if err := os.Mkdir(staged, 0o700); err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(staged, "blocked.txt"), "198.51.100.7\n")
			if err := os.Rename(staged, lists); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "a reload once the directory is back", func() bool { g, _ := counts.get(); return g == 2 })
			waitFor(t, "the directory to be watched again", func() bool { return watches(lists) })
			write(t, list, "203.0.113.9\n")
			waitFor(t, "a reload after a change in the directory made again", func() bool { g, _ := counts.get(); return g == 3 })
		})
	}
}

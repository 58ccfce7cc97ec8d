package config

import (
	"context"
	"errors"
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
// seen (no sleep: the reloader's OnWatch hook says when).
func watching(t *testing.T, r *Reloader, dir string) {
	t.Helper()
	dirs := make(chan []string, 16)
	r.OnWatch = func(d []string) { dirs <- d }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Watch(ctx, 20*time.Millisecond) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	deadline := time.After(30 * time.Second) // only a hung watcher takes this long
	for {
		select {
		case d := <-dirs:
			if slices.Contains(d, dir) {
				return
			}
		case err := <-done:
			t.Fatalf("watch ended: %v", err)
		case <-deadline:
			t.Fatalf("the watcher never watched %s", dir)
		}
	}
}

const watchConfig = `apps:
  - name: a
    app_token_sha256: [05c7cd5c50922870dcfe86ad612a8a32ff0ae65eb6d7894a0b852403fbf25767]
    endpoints: ["*"]
    network: {block_file: %s}
endpoints:
  - {name: e, path: /e}
`

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
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

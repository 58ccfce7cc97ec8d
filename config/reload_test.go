package config

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// configMapDir lays files out as the kubelet does for a ConfigMap volume: the visible
// file is a symlink through ..data, which is swapped atomically on update.
type configMapDir struct {
	t    *testing.T
	dir  string
	name string // the file's name; default config.yaml
	gen  int
}

func (c *configMapDir) publish(content []byte) {
	if c.name == "" {
		c.name = "config.yaml"
	}
	c.gen++
	ts := filepath.Join(c.dir, "..ts-"+string(rune('a'+c.gen)))
	if err := os.Mkdir(ts, 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ts, c.name), content, 0o644); err != nil {
		c.t.Fatal(err)
	}
	tmp := filepath.Join(c.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, "..data")); err != nil {
		c.t.Fatal(err)
	}
	link := filepath.Join(c.dir, c.name)
	if _, err := os.Lstat(link); os.IsNotExist(err) {
		if err := os.Symlink("..data/"+c.name, link); err != nil {
			c.t.Fatal(err)
		}
	}
}

func TestReloadOnConfigMapSwap(t *testing.T) {
	cm := &configMapDir{t: t, dir: t.TempDir()}
	cm.publish(Demo)
	var mu sync.Mutex
	var failures int
	store := &Store{}
	r := &Reloader{Path: filepath.Join(cm.dir, "config.yaml"), Deps: testDeps(), Store: store,
		OnReload: func(_ *Snapshot, err error) {
			if err != nil {
				mu.Lock()
				failures++
				mu.Unlock()
			}
		}}
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	first := store.Current().Version
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Watch(ctx, 20*time.Millisecond) }()
	defer func() {
		cancel()
		<-done
	}()

	// The watcher subscribes in its goroutine, with no event to wait for: publish the new
	// revision again until it is picked up (each publish is the same content, so the
	// version it leads to is the same).
	changed := append([]byte("# second revision\n"), Demo...)
	waitFor(t, "the new revision", func() bool {
		cm.publish(changed)
		for range 20 { // longer than the debounce, so that republishing cannot starve it
			if store.Current().Version != first {
				return true
			}
			time.Sleep(10 * time.Millisecond)
		}
		return false
	})
	second := store.Current().Version

	cm.publish([]byte("apps: [{name: broken}]\n"))
	waitFor(t, "the bad revision to be rejected", func() bool { mu.Lock(); defer mu.Unlock(); return failures > 0 })
	if got := store.Current().Version; got != second {
		t.Fatalf("a bad file replaced the configuration: %s, want %s", got, second)
	}
	if _, ok := store.Current().Rules.App("demo"); !ok {
		t.Fatal("old snapshot no longer serves the demo app")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // only a hung watcher takes this long
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestOnReloadSeesSnapshotInForce: OnReload is told of a good load once the snapshot is
// in force, so that what it starts (the gRPC port, readiness) never serves without it;
// after a bad load, the previous snapshot is still in force.
func TestOnReloadSeesSnapshotInForce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, Demo, 0o600); err != nil {
		t.Fatal(err)
	}
	store := &Store{}
	var seen []*Snapshot
	r := &Reloader{Path: path, Deps: testDeps(), Store: store, OnReload: func(s *Snapshot, err error) {
		if err == nil && store.Current() != s {
			t.Errorf("OnReload ran before its snapshot was in force")
		}
		seen = append(seen, store.Current())
	}}
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	first := store.Current()
	if err := os.WriteFile(path, []byte("apps: [{name: broken}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err == nil {
		t.Fatal("a bad file loaded")
	}
	if len(seen) != 2 || seen[0] != first || seen[1] != first {
		t.Fatalf("in force during OnReload: %v, want the first snapshot twice", seen)
	}
}

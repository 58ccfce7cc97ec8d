package ratelimit

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// memStore opens a memory store closed at the end of the test.
func memStore(t testing.TB, cfg MemoryConfig, clock Clock) *memoryStore {
	t.Helper()
	s, err := openMemory(cfg, clock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustCompile(t testing.TB, in CompileInput, s Store, opts ...Option) *Engine {
	t.Helper()
	e, err := Compile(in, s, opts...)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return e
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

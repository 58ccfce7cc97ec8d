package memstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit/internal/testclock"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// TestRecordsFull: a store holding max_records live records refuses a new one with an
// error wrapping ErrUnavailable and forgets none; a record taken or expired makes room.
func TestRecordsFull(t *testing.T) {
	ctx := context.Background()
	s := New(state.MemoryConfig{MaxRecords: 3}, nil)
	for _, k := range []string{"a", "b", "c"} {
		if _, ok, err := s.Create(ctx, t0, k, []byte(k), time.Minute); !ok || err != nil {
			t.Fatalf("create %s: %v %v", k, ok, err)
		}
	}
	_, ok, err := s.Create(ctx, t0, "d", []byte("d"), time.Minute)
	if ok || !errors.Is(err, state.ErrUnavailable) || !errors.Is(err, ErrRecordsFull) {
		t.Fatalf("4th create: %v %v, want ErrRecordsFull wrapping ErrUnavailable", ok, err)
	}
	if ok, err := s.Swap(ctx, t0, "d", nil, []byte("d"), time.Minute); ok || !errors.Is(err, ErrRecordsFull) {
		t.Fatalf("4th record by swap: %v %v, want ErrRecordsFull", ok, err)
	}
	// Existing records still answer and change.
	if held, ok, err := s.Create(ctx, t0, "a", []byte("x"), time.Minute); ok || err != nil || string(held) != "a" {
		t.Fatalf("create of a held key when full: %q %v %v", held, ok, err)
	}
	if ok, err := s.Swap(ctx, t0, "a", []byte("a"), []byte("a2"), time.Minute); !ok || err != nil {
		t.Fatalf("swap of a held key when full: %v %v", ok, err)
	}
	for _, k := range []string{"a", "b", "c"} {
		if _, ok, _ := s.Get(ctx, t0, k); !ok {
			t.Fatalf("%s forgotten", k)
		}
	}
	if _, ok, _ := s.Take(ctx, t0, "b"); !ok {
		t.Fatal("take b")
	}
	if _, ok, err := s.Create(ctx, t0, "d", []byte("d"), time.Minute); !ok || err != nil {
		t.Fatalf("create after a take: %v %v", ok, err)
	}
	if ok, err := s.Swap(ctx, t0, "a", []byte("a2"), nil, 0); !ok || err != nil {
		t.Fatalf("delete by swap: %v %v", ok, err)
	}
	if _, ok, err := s.Create(ctx, t0, "e", []byte("e"), time.Minute); !ok || err != nil {
		t.Fatalf("create after a delete: %v %v", ok, err)
	}
	// Full again; at the records' expiry (no sweep ran) a new record finds room.
	if _, _, err := s.Create(ctx, t0, "f", []byte("f"), time.Minute); !errors.Is(err, ErrRecordsFull) {
		t.Fatalf("create when full again: %v", err)
	}
	if _, ok, err := s.Create(ctx, t0.Add(time.Minute), "f", []byte("f"), time.Minute); !ok || err != nil {
		t.Fatalf("create once the others expired: %v %v", ok, err)
	}
	if n := s.Records(); n != 1 {
		t.Fatalf("%d records held, want 1", n)
	}
}

// TestRecordsSweep: the background sweep drops expired records and frees their room.
func TestRecordsSweep(t *testing.T) {
	s := New(state.MemoryConfig{}, nil)
	ctx := context.Background()
	s.Create(ctx, t0, "short", []byte("v"), time.Second)
	s.Create(ctx, t0, "long", []byte("v"), time.Hour)
	s.sweep(t0.Add(time.Second - 1).UnixNano())
	if n := s.Records(); n != 2 {
		t.Fatalf("%d records before expiry, want 2", n)
	}
	s.sweep(t0.Add(time.Second).UnixNano())
	if n := s.Records(); n != 1 {
		t.Fatalf("%d records after the sweep, want 1", n)
	}
	if _, ok, _ := s.Get(ctx, t0, "long"); !ok {
		t.Fatal("the live record was swept")
	}
}

// TestRecordsPersisted: records survive a restart through the file with their expiry;
// expired ones are neither written nor read back.
func TestRecordsPersisted(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state.json")
	clock := testclock.New(t0)
	ctx := context.Background()
	s, err := Open(state.MemoryConfig{File: file}, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	s.Create(ctx, t0, "idem:1", []byte{0, 'r', '\n', 0xff}, time.Hour)
	s.Create(ctx, t0, "nonce:1", []byte{}, time.Minute)
	s.Create(ctx, t0, "gone", []byte("v"), time.Second)
	s.Create(ctx, t0, "taken", []byte("v"), time.Hour)
	s.Take(ctx, t0, "taken")
	clock.Add(time.Second)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(state.MemoryConfig{File: file}, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := clock.Now()
	if v, ok, _ := s.Get(ctx, now, "idem:1"); !ok || string(v) != "\x00r\n\xff" {
		t.Fatalf("idem:1 after restart = %q %v", v, ok)
	}
	if v, ok, _ := s.Get(ctx, now, "nonce:1"); !ok || v == nil || len(v) != 0 {
		t.Fatalf("nonce:1 after restart = %q %v", v, ok)
	}
	for _, k := range []string{"gone", "taken"} {
		if _, ok, _ := s.Get(ctx, now, k); ok {
			t.Fatalf("%s came back after restart", k)
		}
	}
	if n := s.Records(); n != 2 {
		t.Fatalf("%d records read back, want 2", n)
	}
	if _, ok, _ := s.Get(ctx, t0.Add(time.Hour-1), "idem:1"); !ok {
		t.Fatal("idem:1 expired before its ttl")
	}
	if _, ok, _ := s.Get(ctx, t0.Add(time.Hour), "idem:1"); ok {
		t.Fatal("idem:1 outlived its ttl across the restart")
	}
}

// TestRecordsOldFile: a version 2 file written before records existed still loads.
func TestRecordsOldFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state.json")
	old := `{"version":2,"counters":[],"bindings":[{"key":"bGlj","members":["ZGV2MQ=="]}]}`
	if err := os.WriteFile(file, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(state.MemoryConfig{File: file}, func() time.Time { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if bound, n, _ := s.Bind(ctx, "lic", "dev1", 1); !bound || n != 1 {
		t.Fatalf("binding lost: %v %d", bound, n)
	}
	if s.Records() != 0 {
		t.Fatal("records from nowhere")
	}
	if _, ok, err := s.Create(ctx, t0, "k", []byte("v"), time.Minute); !ok || err != nil {
		t.Fatalf("create: %v %v", ok, err)
	}
}

// TestMaxRecordsValidate: memory.max_records is 0 (the default) or positive.
func TestMaxRecordsValidate(t *testing.T) {
	for _, c := range []struct {
		max int
		ok  bool
	}{{-1, false}, {0, true}, {1, true}} {
		errs := state.StoreConfig{Memory: state.MemoryConfig{MaxRecords: c.max}}.Validate()
		if got := len(errs) == 0; got != c.ok {
			t.Errorf("max_records %d: %v, want ok=%v", c.max, errs, c.ok)
		}
	}
	if s := New(state.MemoryConfig{}, nil); s.maxRecords != 1_000_000 {
		t.Errorf("default max_records %d, want 1000000", s.maxRecords)
	}
}

// TestRecordsNamespaceShare: one namespace holds at most a quarter of max_records, so a
// flood of nonces leaves room for sessions; keys without a namespace count against the
// total only. A record taken back frees its namespace's room.
func TestRecordsNamespaceShare(t *testing.T) {
	ctx := context.Background()
	s := New(state.MemoryConfig{MaxRecords: 8}, nil) // a quarter: 2
	create := func(k string) error {
		_, ok, err := s.Create(ctx, t0, k, []byte{1}, time.Minute)
		if err == nil && !ok {
			t.Fatalf("create %s: held already", k)
		}
		return err
	}
	for _, k := range []string{"nonce:1", "nonce:2"} {
		if err := create(k); err != nil {
			t.Fatalf("create %s within the share: %v", k, err)
		}
	}
	if err := create("nonce:3"); !errors.Is(err, ErrRecordsFull) {
		t.Fatalf("third nonce (share 2): %v, want ErrRecordsFull", err)
	}
	if ok, err := s.Swap(ctx, t0, "nonce:3", nil, []byte{1}, time.Minute); ok || !errors.Is(err, ErrRecordsFull) {
		t.Fatalf("third nonce by swap: %v %v, want ErrRecordsFull", ok, err)
	}
	for _, k := range []string{"sess:1", "sess:2", "a", "b", "c", "d"} {
		if err := create(k); err != nil {
			t.Fatalf("create %s beside a full namespace: %v", k, err)
		}
	}
	if err := create("e"); !errors.Is(err, ErrRecordsFull) {
		t.Fatalf("ninth record (max 8): %v, want ErrRecordsFull", err)
	}
	if _, ok, _ := s.Take(ctx, t0, "a"); !ok {
		t.Fatal("take a")
	}
	if err := create("nonce:3"); !errors.Is(err, ErrRecordsFull) {
		t.Fatalf("a freed slot outside the namespace gave it room: %v", err)
	}
	if _, ok, _ := s.Take(ctx, t0, "nonce:1"); !ok {
		t.Fatal("take nonce:1")
	}
	if err := create("nonce:3"); err != nil {
		t.Fatalf("nonce after one was taken: %v", err)
	}
}

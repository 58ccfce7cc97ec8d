package capped_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/capped"
)

// TestReadFile: a file of exactly limit bytes is read whole; one byte more is refused with
// ErrTooLarge, as a regular file (by its size) and through a pipe-like reader alike.
func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		size int
		ok   bool
	}{{0, true}, {99, true}, {100, true}, {101, false}, {5000, false}} {
		p := filepath.Join(dir, "f")
		if err := os.WriteFile(p, []byte(strings.Repeat("x", c.size)), 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := capped.ReadFile(p, 100)
		if c.ok && (err != nil || len(b) != c.size) {
			t.Errorf("%d bytes: %d read, %v", c.size, len(b), err)
		}
		if !c.ok && (!errors.Is(err, capped.ErrTooLarge) || err.Error() != "file is larger than the limit of 100 bytes" || b != nil) {
			t.Errorf("%d bytes: %v (%d read), want ErrTooLarge", c.size, err, len(b))
		}
	}
	if _, err := capped.ReadFile(filepath.Join(dir, "missing"), 100); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestReadFileRefusesFIFO: a named pipe (or any file that is not a regular file) is
// refused at once; opening it for reading would otherwise wait for a writer forever,
// holding the reload lock.
func TestReadFileRefusesFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pipe")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := capped.ReadFile(p, 100); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, capped.ErrNotRegular) {
			t.Fatalf("a named pipe: %v, want ErrNotRegular", err)
		}
	case <-time.After(30 * time.Second): // a hang guard, not a speed assertion
		os.WriteFile(p, nil, 0o600) // unblock the reader
		t.Fatal("reading a named pipe waited for a writer")
	}
	if _, err := capped.ReadFile(t.TempDir(), 100); !errors.Is(err, capped.ErrNotRegular) {
		t.Errorf("a directory: %v, want ErrNotRegular", err)
	}
}

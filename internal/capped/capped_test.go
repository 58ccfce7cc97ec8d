package capped_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

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

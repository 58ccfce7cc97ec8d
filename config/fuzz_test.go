package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to the loader that start-up, reload and validate share,
// offline, with every fixture as a seed (the bombs included). Whatever the input: no
// panic, and either a complete snapshot or a non-empty list of problems, never both.
func FuzzLoad(f *testing.F) {
	var seeds []string
	for _, g := range []string{"testdata/good/*.yaml", "testdata/bad/*.yaml", "testdata/device/*.yaml", "demo.yaml"} {
		m, _ := filepath.Glob(g)
		seeds = append(seeds, m...)
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// Relative file names resolve against the good fixtures, so that key sets, secrets and
	// lists the mutations name can be read.
	path := filepath.Join("testdata", "good", "fuzz.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		deps := testDeps()
		deps.Keys = NewKeySources()
		defer deps.Keys.Close()
		s, err := LoadBytes(data, path, deps)
		var errs Errors
		switch {
		case err == nil && (s == nil || s.Rules == nil || s.File == nil):
			t.Fatal("accepted without a complete snapshot")
		case err != nil && s != nil:
			t.Fatal("a snapshot and an error")
		case err != nil && (!errors.As(err, &errs) || len(errs) == 0):
			t.Fatalf("error is not a list of problems: %T %v", err, err)
		}
	})
}

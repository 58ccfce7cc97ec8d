package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testDeps() Deps {
	env := map[string]string{
		"GATEHOUSE_TEST_SHORT_KEY":  "too-short",
		"GATEHOUSE_PAY_KEY":         "bm90LWEtcmVhbC1jaXBoZXJ0ZXh0LWJ1dC1iYXNlNjQ=",
		"GATEHOUSE_SECRETS_AES_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
	}
	return Deps{Offline: true, LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
}

// TestBadConfigs loads every file in testdata/bad and expects each "# want:" message,
// with its path, among the reported problems.
func TestBadConfigs(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var wants []string
			for _, line := range strings.Split(string(data), "\n") {
				if w, ok := strings.CutPrefix(line, "# want: "); ok {
					wants = append(wants, w)
				}
			}
			if len(wants) == 0 {
				t.Fatal("fixture has no '# want:' line")
			}
			_, err = Load(f, testDeps())
			if err == nil {
				t.Fatal("configuration accepted")
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is not a list of problems: %T %v", err, err)
			}
			if len(errs) < len(wants) {
				t.Errorf("%d problems reported, want at least %d:\n%v", len(errs), len(wants), err)
			}
			for _, w := range wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
		})
	}
}

func TestGoodConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*.yaml")
	files = append(files, "demo.yaml")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			s, err := Load(f, testDeps())
			if err != nil {
				t.Fatalf("rejected:\n%v", err)
			}
			if s.Rules == nil || len(s.Version) != 12 {
				t.Fatalf("snapshot incomplete: %+v", s)
			}
		})
	}
}

func TestDemoIsEmbedded(t *testing.T) {
	disk, err := os.ReadFile("demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if string(disk) != string(Demo) {
		t.Fatal("embedded demo differs from demo.yaml")
	}
	s, err := LoadBytes(Demo, DemoPath, testDeps())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Rules.App("demo"); !ok {
		t.Fatal("demo app missing")
	}
}

func TestVersionFollowsContent(t *testing.T) {
	a, err := LoadBytes(Demo, DemoPath, testDeps())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := LoadBytes(append([]byte("# changed\n"), Demo...), DemoPath, testDeps())
	if a.Version == b.Version {
		t.Fatal("different files, same version")
	}
}

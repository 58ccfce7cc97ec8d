package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestMeasure counts expanded nodes and depth against hand-counted documents, at the
// exact limit and one unit either side.
func TestMeasure(t *testing.T) {
	// mapping 1 + key a 1 + [1,2,3] 4 + key b 1 + *x 4 = 11 nodes; mapping → seq → 1 = 3 deep.
	flat := "a: &x [1, 2, 3]\nb: *x\n"
	// mapping 1 + a 1 + [[1]] 3 + b 1 + [[*x]] 2+3 = 11 nodes;
	// mapping → seq → seq → (x) seq → seq → 1 = 6 deep.
	nested := "a: &x [[1]]\nb: [[*x]]\n"
	cases := []struct {
		name, doc       string
		maxNodes, depth int
		want            string // "" accepted
	}{
		{"nodes at the limit", flat, 11, 3, ""},
		{"nodes over the limit", flat, 10, 3, "line 2: aliases expand the configuration to more than 10 YAML nodes"},
		{"nodes under the limit", flat, 12, 3, ""},
		{"depth at the limit", flat, 11, 3, ""},
		{"depth over the limit", flat, 11, 2, "line 1: the configuration nests deeper than 2 levels"},
		{"depth through an alias at the limit", nested, 11, 6, ""},
		{"depth through an alias over the limit", nested, 11, 5, "line 2: the configuration nests deeper than 5 levels"},
		{"alias to its own ancestor", "a: &x [1, *x]\n", 100, 10, "line 1: alias *x refers to a node that contains it"},
		{"merge key to its own ancestor", "a: &x {b: {<<: *x}}\n", 100, 10, "alias *x refers to a node that contains it"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var root yaml.Node
			if err := yaml.Unmarshal([]byte(c.doc), &root); err != nil {
				t.Fatal(err)
			}
			err := measure(root.Content[0], c.maxNodes, c.depth)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}

// TestConfigFileSize: a configuration of exactly 1 MiB loads; one byte more is refused
// before it is parsed, whether read from a file or handed over as bytes.
func TestConfigFileSize(t *testing.T) {
	const limit = 1048576
	dir := t.TempDir()
	for _, c := range []struct {
		size int
		ok   bool
	}{{limit - 1, true}, {limit, true}, {limit + 1, false}} {
		data := padded(Demo, c.size)
		path := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, fileErr := Load(path, testDeps())
		_, bytesErr := LoadBytes(data, path, testDeps())
		for _, err := range []error{fileErr, bytesErr} {
			if c.ok && err != nil {
				t.Errorf("%d bytes refused: %v", c.size, err)
			}
			if !c.ok && (err == nil || !strings.Contains(err.Error(), "larger than the limit of 1048576 bytes")) {
				t.Errorf("%d bytes: got %v", c.size, err)
			}
		}
	}
}

// padded returns data followed by comment lines, exactly size bytes long.
func padded(data []byte, size int) []byte {
	var b bytes.Buffer
	b.Write(data)
	for b.Len() < size {
		line := min(size-b.Len(), 100)
		if line == 1 {
			b.WriteByte('\n')
			continue
		}
		b.WriteString("#" + strings.Repeat("x", line-2) + "\n")
	}
	return b.Bytes()
}

func TestReadFileLimit(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		size int
		ok   bool
	}{{9, true}, {10, true}, {11, false}} {
		p := filepath.Join(dir, "f")
		if err := os.WriteFile(p, bytes.Repeat([]byte("a"), c.size), 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := ReadFile(p, 10)
		if c.ok && (err != nil || len(b) != c.size) {
			t.Errorf("%d bytes: %d read, %v", c.size, len(b), err)
		}
		if !c.ok && !errors.Is(err, ErrTooLarge) {
			t.Errorf("%d bytes: got %v, want ErrTooLarge", c.size, err)
		}
	}
}

// TestReferencedFileSize: every kind of file a configuration names is refused, with the
// key that names it, one byte over its limit.
func TestReferencedFileSize(t *testing.T) {
	const app = "apps: [{name: a, app_token_sha256: [05c7cd5c50922870dcfe86ad612a8a32ff0ae65eb6d7894a0b852403fbf25767], endpoints: ['*']%s}]\n"
	cases := []struct {
		name, file string
		size       int
		config     string
		want       string
	}{
		{"user jwks file", "keys.json", 1048577,
			"jwt_providers: [{name: u, issuer: https://id.test, audiences: [api], jwks: {file: keys.json}}]\n",
			"jwt_providers[0].jwks: jwks: "},
		{"secret file", "s.key", 1048577, "secrets: [{name: s, file: s.key}]\n", "secrets[0].file: s.key is larger than the limit of 1048576 bytes"},
		{"schema file", "s.json", 1048577, "endpoints: [{name: e, path: /e, payload: {json_schema_file: s.json}}]\n",
			"endpoints[0].payload.json_schema_file: file is larger than the limit of 1048576 bytes"},
		{"ip allow list", "ips.txt", 16777217, strings.Replace(app, "%s", ", network: {allow_file: ips.txt}", 1),
			"apps[0].network.allow_file: cannot read ips.txt: file is larger than the limit of 16777216 bytes"},
		{"device block list", "devs.txt", 16777217, strings.Replace(app, "%s", ", devices: {block_file: devs.txt}", 1),
			"apps[0].devices.block_file: cannot read devs.txt: file is larger than the limit of 16777216 bytes"},
		{"rate-limit service file", "rls.yaml", 1048577, "rate_limit_service: {files: [rls.yaml]}\n", "larger than the limit of 1048576 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, c.file), padded(nil, c.size), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadBytes([]byte(c.config), filepath.Join(dir, "config.yaml"), testDeps())
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "larger than the limit") {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}

// TestReloadKeepsServingAfterAliasBomb: a bomb swapped in for a good file is refused by
// the reload, reported, and the old snapshot keeps serving.
func TestReloadKeepsServingAfterAliasBomb(t *testing.T) {
	bomb, err := os.ReadFile("testdata/bad/alias-bomb.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, Demo, 0o644); err != nil {
		t.Fatal(err)
	}
	var reported []error
	store := &Store{}
	r := &Reloader{Path: path, Deps: testDeps(), Store: store, OnReload: func(_ *Snapshot, err error) { reported = append(reported, err) }}
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	good := store.Current()
	if err := os.WriteFile(path, bomb, 0o644); err != nil {
		t.Fatal(err)
	}
	err = r.Reload()
	if err == nil || !strings.Contains(err.Error(), "aliases expand the configuration to more than 1000000 YAML nodes") {
		t.Fatalf("reload: %v", err)
	}
	if len(reported) != 2 || reported[1] == nil {
		t.Fatalf("reload outcomes reported: %v", reported)
	}
	if store.Current() != good {
		t.Fatal("the refused file replaced the snapshot")
	}
	if _, ok := store.Current().Rules.App("demo"); !ok {
		t.Fatal("the old snapshot no longer serves the demo app")
	}
}

// BenchmarkParseAliasBomb measures how fast the bomb is refused (it never expands).
func BenchmarkParseAliasBomb(b *testing.B) {
	bomb, err := os.ReadFile("testdata/bad/alias-bomb.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(bomb); err == nil {
			b.Fatal("bomb accepted")
		}
	}
}

// TestDepthLimitInConfig: 64 levels load, 65 do not. Counted by hand: the document's
// mapping is level 1, rate_limit_service's value 2, domains 3, the domain 4, its
// descriptors 5; each nested descriptor adds a mapping and its descriptors list, so the
// n-th descriptor's mapping is at 4+2n, its scalars at 5+2n and a rate_limit's at 6+2n.
func TestDepthLimitInConfig(t *testing.T) {
	nest := func(n int, inner string) string {
		return "rate_limit_service:\n  domains:\n    - domain: deep\n      descriptors: " +
			strings.Repeat("[{key: k, descriptors: ", n-1) + "[" + inner + "]" + strings.Repeat("}]", n-1) + "\n"
	}
	cases := []struct {
		name, doc string
		deep      bool
	}{
		{"63 levels", nest(29, "{key: k, value: v}"), false},
		{"64 levels", nest(29, "{key: k, rate_limit: {unit: second, requests_per_unit: 1}}"), false},
		{"65 levels", nest(30, "{key: k, value: v}"), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.doc))
			if got := err != nil && strings.Contains(err.Error(), "nests deeper than 64 levels"); got != c.deep {
				t.Fatalf("refused for depth: %v, want %v (%v)", got, c.deep, err)
			}
			if !c.deep && err != nil {
				t.Fatalf("refused: %v", err)
			}
		})
	}
}

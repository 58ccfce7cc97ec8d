package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestChartFilesInSync fails when the committed chart drifts from its sources: the
// configuration schema in values.schema.json from the config package's types, or the
// README's values table from values.yaml. `make chart-docs` regenerates both.
func TestChartFilesInSync(t *testing.T) {
	var out strings.Builder
	if err := run([]string{"-check", "-chart", "../../k8s/gatehouse"}, &out, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
}

// TestCheckSeesDrift: a changed comment in values.yaml makes -check fail and names the
// README; a run without -check rewrites it, after which -check passes.
func TestCheckSeesDrift(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"values.yaml", "values.schema.json", "README.md"} {
		b, err := os.ReadFile(filepath.Join("../../k8s/gatehouse", f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "values.yaml" {
			b = []byte(strings.Replace(string(b), "# -- How Gatehouse runs.", "# -- How Gatehouse runs, changed.", 1))
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out strings.Builder
	err := run([]string{"-check", "-chart", dir}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "README.md") || strings.Contains(err.Error(), "values.schema.json") {
		t.Fatalf("-check after a comment changed: %v", err)
	}
	if err := run([]string{"-chart", dir}, &out, &out); err != nil {
		t.Fatal(err)
	}
	readme, _ := os.ReadFile(filepath.Join(dir, "README.md"))
	if !strings.Contains(string(readme), "| `mode` | string | `\"central\"` | How Gatehouse runs, changed.") {
		t.Errorf("README after the rewrite lacks the new text")
	}
	if err := run([]string{"-check", "-chart", dir}, &out, &out); err != nil {
		t.Fatalf("-check after the rewrite: %v", err)
	}
}

// TestValueRows: keys, types, defaults and comment text, on a hand-written values file.
func TestValueRows(t *testing.T) {
	values := `# Chart header, not a value's comment.

# -- Replicas.
replicaCount: 1
image:
  # -- Image tag; empty means
  # the appVersion.
  tag: ""
  # Not documented: no "--".
  pullPolicy: IfNotPresent
# A note first.
# -- Extra env | with a pipe, under /etc/<name>.
extraEnv: []
# -- Long default.
long: {a: aaaaaaaaaaaaaaaaaaaa, b: bbbbbbbbbbbbbbbbbbbbbbbbbbb, c: ccccccccccccccccccc}
# -- Null default.
maxUnavailable: null
`
	rows, err := valueRows([]byte(values))
	if err != nil {
		t.Fatal(err)
	}
	want := []row{
		{"replicaCount", "int", "`1`", "Replicas."},
		{"image.tag", "string", "`\"\"`", "Image tag; empty means the appVersion."},
		{"extraEnv", "list", "`[]`", "Extra env | with a pipe, under /etc/<name>."},
		{"long", "object", "see values.yaml", "Long default."},
		{"maxUnavailable", "null", "`null`", "Null default."},
	}
	if len(rows) != len(want) {
		t.Fatalf("rows %+v", rows)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("row %d: %+v, want %+v", i, rows[i], want[i])
		}
	}
	if _, err := valueRows([]byte("a: 1\n")); err == nil {
		t.Error("a values file without any `# --` comment passed")
	}
}

// TestSpliceConfigSchema: only the top-level properties.config changes; a "config" key
// elsewhere, and every other byte, stay.
func TestSpliceConfigSchema(t *testing.T) {
	doc := `{
  "title": "t",
  "config": {"top": "not this one"},
  "properties": {
    "other": {"properties": {"config": {"nested": "not this one"}}},
    "config": {"old": true},
    "after": {"type": "string"}
  }
}
`
	out, err := spliceConfigSchema([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	props := got["properties"].(map[string]any)
	cfg := props["config"].(map[string]any)
	if _, old := cfg["old"]; old || cfg["definitions"] == nil {
		t.Errorf("config not replaced: %v", cfg)
	}
	for _, keep := range []string{`"config": {"top": "not this one"}`, `"other": {"properties": {"config": {"nested": "not this one"}}},`, `"after": {"type": "string"}`} {
		if !strings.Contains(string(out), keep) {
			t.Errorf("lost %s", keep)
		}
	}
	if _, err := spliceConfigSchema([]byte(`{"properties": {"x": {}}}`)); err == nil {
		t.Error("a schema without properties.config passed")
	}
}

// TestCell: a table cell neither ends at a pipe nor loses a <placeholder>.
func TestCell(t *testing.T) {
	if got, want := cell("a | b under /etc/<name>"), `a \| b under /etc/&lt;name&gt;`; got != want {
		t.Errorf("cell: %q, want %q", got, want)
	}
}

package compose

import (
	"crypto/md5"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The repository's front matter, checked here with the walk-through it points to.

const repoRoot = "../.."

func readRepo(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestLicenseIsCanonical: LICENSE is the Apache License 2.0 exactly as the ASF publishes
// it (the digest the ASF's LICENSE-2.0.txt has), so that license scanners recognise it; the
// copyright line lives in NOTICE.
func TestLicenseIsCanonical(t *testing.T) {
	sum := md5.Sum([]byte(readRepo(t, "LICENSE")))
	if got := hex.EncodeToString(sum[:]); got != "3b83ef96387f14655fc854ddc3c6bd57" {
		t.Errorf("LICENSE md5 %s: not the canonical Apache-2.0 text", got)
	}
	if n := readRepo(t, "NOTICE"); !strings.Contains(n, "Copyright 2026 The Gatehouse Authors") {
		t.Errorf("NOTICE lacks the copyright line:\n%s", n)
	}
}

// TestChangelogUnreleased: Keep a Changelog's shape, with an Unreleased section first whose
// subsections are among the format's six, in its order.
func TestChangelogUnreleased(t *testing.T) {
	c := readRepo(t, "CHANGELOG.md")
	sections := regexp.MustCompile(`(?m)^## (.+)$`).FindAllStringSubmatch(c, -1)
	if len(sections) == 0 || sections[0][1] != "[Unreleased]" {
		t.Fatalf("the first section must be ## [Unreleased], got %v", sections)
	}
	unreleased := c[strings.Index(c, "## [Unreleased]"):]
	if i := strings.Index(unreleased[1:], "\n## "); i >= 0 {
		unreleased = unreleased[:i+1]
	}
	order := []string{"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
	last := -1
	for _, m := range regexp.MustCompile(`(?m)^### (.+)$`).FindAllStringSubmatch(unreleased, -1) {
		i := slices.Index(order, m[1])
		if i <= last {
			t.Errorf("### %s: want one of %v, in that order", m[1], order)
		}
		last = i
	}
	if last < 0 || !strings.Contains(unreleased, "deploy/compose/") {
		t.Error("Unreleased lists no changes, or not the compose walk-through")
	}
}

// TestSecurityPolicy: SECURITY.md says how to report privately and names what is in scope.
func TestSecurityPolicy(t *testing.T) {
	s := readRepo(t, "SECURITY.md")
	for _, want := range []string{"## Reporting a vulnerability", "Report a vulnerability", "## Supported versions",
		"## In scope", "## Out of scope", "gRPC port", "admin port", "Configuration loading", "Helm chart's defaults"} {
		if !strings.Contains(s, want) {
			t.Errorf("SECURITY.md does not mention %q", want)
		}
	}
}

// TestReadmeFrontMatter: the README links the walk-through, draws the architecture in a
// mermaid block whose edges only join nodes it defines, and every relative link in it and
// in the walk-through's README names a file that exists.
func TestReadmeFrontMatter(t *testing.T) {
	r := readRepo(t, "README.md")
	if !strings.Contains(r, "(deploy/compose/README.md)") {
		t.Error("README does not link deploy/compose/README.md")
	}
	block := regexp.MustCompile("(?s)```mermaid\n(.*?)\n```").FindStringSubmatch(r)
	if block == nil {
		t.Fatal("README has no mermaid block")
	}
	checkMermaid(t, block[1])
	for file, text := range map[string]string{"README.md": r, "deploy/compose/README.md": readRepo(t, "deploy/compose/README.md")} {
		for _, m := range regexp.MustCompile(`\]\(([^)#:]+)\)`).FindAllStringSubmatch(text, -1) {
			if _, err := os.Stat(filepath.Join(repoRoot, filepath.Dir(file), m[1])); err != nil {
				t.Errorf("%s links %s, which does not exist", file, m[1])
			}
		}
	}
}

// checkMermaid parses the flowchart subset the README uses: a header, then edges
// `a["label"] -->|"label"| b` (or -.->) where each node is defined once with a label.
func checkMermaid(t *testing.T, src string) {
	t.Helper()
	lines := strings.Split(src, "\n")
	if lines[0] != "flowchart LR" {
		t.Fatalf("mermaid: first line %q, want flowchart LR", lines[0])
	}
	node := `([a-z]+)(\(\["[^"]+"\]\)|\["[^"]+"\]|\[\("[^"]+"\)\])?`
	edge := regexp.MustCompile(`^  ` + node + ` (-->|-\.->)\|("[^"|]+"|[A-Za-z]+)\| ` + node + `$`)
	defined := map[string]bool{}
	for _, l := range lines[1:] {
		m := edge.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("mermaid: %q is not an edge of the form the README uses", l)
			continue
		}
		for _, n := range [][2]string{{m[1], m[2]}, {m[5], m[6]}} {
			if n[1] != "" {
				if defined[n[0]] {
					t.Errorf("mermaid: node %s labelled twice", n[0])
				}
				defined[n[0]] = true
			} else if !defined[n[0]] {
				t.Errorf("mermaid: node %s used before it is labelled", n[0])
			}
		}
	}
	for _, want := range []string{"envoy", "gatehouse", "store", "otel"} {
		if !defined[want] {
			t.Errorf("mermaid: the architecture has no %s", want)
		}
	}
}

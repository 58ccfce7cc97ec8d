package ratelimit

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/ratelimit/memstore"
)

// TestDomainFileLimits: a rate-limit service file that is an alias bomb, refers to its
// own ancestor or exceeds 1 MiB is refused with the reason; one of exactly 1 MiB is read.
func TestDomainFileLimits(t *testing.T) {
	var bomb strings.Builder
	bomb.WriteString("domain: bomb\ndescriptors:\n  - &a0 {key: k, value: v, rate_limit: {unit: second, requests_per_unit: 1}}\n")
	for i := 1; i < 10; i++ {
		bomb.WriteString(fmt.Sprintf("  - &a%d {key: k%d, descriptors: [%s]}\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 10), ", ")))
	}
	valid := "domain: big\ndescriptors: [{key: k, rate_limit: {unit: second, requests_per_unit: 1}}]\n"
	pad := func(n int) string { return valid + "#" + strings.Repeat("x", n-len(valid)-2) + "\n" }
	cases := []struct{ name, content, want string }{
		{"alias bomb", bomb.String(), "excessive aliasing"},
		{"alias to its own ancestor", "domain: loop\ndescriptors: &l\n  - {key: k, descriptors: *l}\n", "contains itself"},
		{"one byte over 1 MiB", pad(1048577), "larger than the limit of 1048576 bytes"},
		{"exactly 1 MiB", pad(1048576), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "rls.yaml")
			if err := os.WriteFile(p, []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Compile(CompileInput{RLS: RLSConfig{Files: []string{p}}}, memstore.New(MemoryConfig{}, nil))
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}

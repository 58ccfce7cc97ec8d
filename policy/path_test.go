package policy

import (
	"strings"
	"testing"
)

// TestNormalizePath: the normal form of paths that are rewritten rather than refused,
// typed by hand from the path model.
func TestNormalizePath(t *testing.T) {
	cases := []struct{ in, want string }{
		{"/", "/"},
		{"/;x=1", "/"},
		{"/v1/admin", "/v1/admin"},
		{"/v1/admin/", "/v1/admin"},
		{"/v1/admin;jsessionid=1/", "/v1/admin"},
		{"/v1;a;b/admin;c", "/v1/admin"},
		{"/v1/%61dmin", "/v1/admin"},
		{"/v1/%7Euser%2d1%5F%2E%30", "/v1/~user-1_.0"},
		{"/v1/a%20b", "/v1/a%20b"},
		{"/v1/caf%c3%a9", "/v1/caf%C3%A9"},
		{"/v1/%e2%82%ac", "/v1/%E2%82%AC"},
		{"/v1/a%40b%3a", "/v1/a%40b%3A"},
		{"/v1/a.b", "/v1/a.b"},
		{"/v1/.well-known", "/v1/.well-known"},
		{"/v1/ADMIN", "/v1/ADMIN"},
	}
	for _, tc := range cases {
		got, ok := normalizePath(tc.in)
		if !ok || got != tc.want {
			t.Errorf("normalizePath(%q) = %q, %v; want %q", tc.in, got, ok, tc.want)
		}
	}
}

// TestNormalPathDoesNotAllocate: a path already in normal form costs no allocation.
func TestNormalPathDoesNotAllocate(t *testing.T) {
	for _, p := range []string{"/", "/v1/profile", "/v1/files/report.pdf", "/v1/a-b_c~d"} {
		if n := testing.AllocsPerRun(100, func() { normalizePath(p) }); n != 0 {
			t.Errorf("%q: %v allocations", p, n)
		}
	}
}

var sinkPath string

func BenchmarkNormalizePath(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		sinkPath, _ = normalizePath("/v1/profile/items")
	}
}

// FuzzNormalizePath: any input either is refused or has a normal form that is its own
// normal form, with no empty, dot or parameter-carrying segment and no refused byte.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "/v1/admin", "/v1/admin;x=1/", "/v1/%61dmin", "/v1/x/..;/admin", "/v1/caf%c3%a9", "/v1//a", "/v1/%2e%2e", "/%C0%AE"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		n, ok := normalizePath(p)
		if !ok {
			return
		}
		if again, ok2 := normalizePath(n); !ok2 || again != n {
			t.Fatalf("%q → %q → %q, %v: not idempotent", p, n, again, ok2)
		}
		if n == "/" {
			return
		}
		for _, seg := range strings.Split(n[1:], "/") {
			if seg == "" || seg == "." || seg == ".." || strings.HasSuffix(seg, ".") || strings.ContainsAny(seg, ";\\?#") {
				t.Fatalf("%q → %q: segment %q", p, n, seg)
			}
		}
		for i := 0; i < len(n); i++ {
			if n[i] <= ' ' || n[i] >= 0x7f {
				t.Fatalf("%q → %q: byte %#x", p, n, n[i])
			}
		}
	})
}

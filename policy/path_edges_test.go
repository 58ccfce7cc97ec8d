package policy

import "testing"

// TestPathByteEdges: the character classes of the path model at their edges, typed from
// RFC 3986 (unreserved: ALPHA DIGIT - . _ ~) and RFC 9110 (token), each edge and the byte
// just outside it.
func TestPathByteEdges(t *testing.T) {
	// The first and last of each range decode; the bytes beside them stay escaped.
	if got, ok := normalizePath("/%61%7A%41%5A%30%39"); !ok || got != "/azAZ09" {
		t.Errorf("normalizePath(/%%61%%7A%%41%%5A%%30%%39) = %q, %v; want /azAZ09", got, ok)
	}
	for _, c := range []struct{ in, want string }{
		{"/%60", "/%60"}, {"/%7B", "/%7B"}, {"/%40", "/%40"}, {"/%5B", "/%5B"}, {"/%2C", "/%2C"}, {"/%3A", "/%3A"},
	} {
		if got, ok := normalizePath(c.in); !ok || got != c.want {
			t.Errorf("normalizePath(%q) = %q, %v; want %q (kept escaped)", c.in, got, ok, c.want)
		}
	}
	// An escape of 0x80 or above must decode, with its neighbours, to UTF-8.
	for _, p := range []string{"/%80", "/a%80b", "/%C3", "/%FF"} {
		if got, ok := normalizePath(p); ok {
			t.Errorf("normalizePath(%q) = %q, accepted; want refused (not UTF-8)", p, got)
		}
	}
	if got, ok := normalizePath("/%7F"); ok {
		t.Errorf("normalizePath(/%%7F) = %q, accepted; want refused (DEL)", got)
	}
}

// TestRootRulePath: "/" is a rule path, and "/x/" is "/x".
func TestRootRulePath(t *testing.T) {
	for p, want := range map[string]bool{"/": true, "/x/": true, "/x": true, "": false, "x": false, "/x//": false, "/./": false} {
		if IsRulePath(p) != want {
			t.Errorf("IsRulePath(%q) = %v, want %v", p, !want, want)
		}
	}
	if routePath("/") != "/" || routePath("/x/") != "/x" {
		t.Errorf("routePath: %q %q", routePath("/"), routePath("/x/"))
	}
}

// TestEqualFoldASCII: only A-Z fold to a-z; the bytes beside the range ('@' '[' beside
// 'A' 'Z', and their lower-case neighbours '`' '{') fold to nothing.
func TestEqualFoldASCII(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"a", "A", true}, {"A", "a", true}, {"z", "Z", true}, {"Z", "z", true}, {"mIxEd", "MiXeD", true},
		{"@", "`", false}, {"`", "@", false}, {"[", "{", false}, {"{", "[", false},
		{"a", "b", false}, {"ab", "a", false}, {"", "", true},
	} {
		if got := equalFoldASCII(c.a, c.b); got != c.want {
			t.Errorf("equalFoldASCII(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

// TestIsToken: an RFC 9110 token, at the edges of its ranges and its symbol list.
func TestIsToken(t *testing.T) {
	for s, want := range map[string]bool{
		"GET": true, "a": true, "z": true, "A": true, "Z": true, "0": true, "9": true,
		"!": true, "~": true, "`": true, "M-SEARCH": true,
		"": false, "{": false, "@": false, "[": false, "/": false, ":": false,
		"G T": false, "GET,POST": false, "\x00": false,
	} {
		if isToken(s) != want {
			t.Errorf("isToken(%q) = %v, want %v", s, !want, want)
		}
	}
}

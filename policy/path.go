package policy

import (
	"strings"
	"unicode/utf8"
)

// The path model. A request path is matched in one normal form, so that no other spelling
// of a path can reach a looser rule than the path itself:
//
//   - the path is absolute, without query or fragment;
//   - percent-encoded unreserved characters (ALPHA DIGIT - . _ ~) are decoded, other
//     escapes are kept with upper-case hex digits;
//   - an encoded '/', '\', '%', ';', '?', '#', NUL or control byte, a malformed escape, a raw
//     control, space, non-ASCII byte or backslash, and escapes that do not decode to UTF-8
//     (overlong forms of '.') refuse the path;
//   - ';' parameters are stripped from every segment (Tomcat and Spring ignore them), so
//     "..;" is "..";
//   - empty segments ("//"), dot segments ("." and "..") and segments ending in '.' (which
//     Windows servers strip) refuse the path;
//   - one trailing '/' is ignored.
//
// Case is left as sent: matching compares it (see Endpoint.matchPath).

// normalizePath returns the normal form of a request path, and false when the path is
// refused. An already normal path is returned as it is, without allocating.
func normalizePath(p string) (string, bool) {
	if isNormal(p) {
		return p, true
	}
	return rewritePath(p)
}

// isNormal reports whether p is already in normal form: safe bytes only, and no empty,
// dot or dot-ending segment, no trailing '/'. Anything else goes to rewritePath, which
// either rewrites or refuses it.
func isNormal(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	if p == "/" {
		return true
	}
	segStart := 1
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			if !plainByte(p[i]) {
				return false
			}
			continue
		}
		seg := p[segStart:i]
		if seg == "" || seg[len(seg)-1] == '.' {
			return false // empty, ".", ".." or ending in '.': also catches a trailing '/'
		}
		segStart = i + 1
	}
	return true
}

// plainByte reports whether a raw path byte stands for itself in the normal form.
func plainByte(b byte) bool {
	if b <= ' ' || b >= 0x7f {
		return false
	}
	switch b {
	case '%', ';', '\\', '?', '#':
		return false
	}
	return true
}

// rewritePath builds the normal form of a path that isNormal did not accept.
func rewritePath(p string) (string, bool) {
	if p == "" || p[0] != '/' {
		return "", false
	}
	buf := make([]byte, 0, len(p))
	rest := p[1:]
	for {
		seg, tail, more := strings.Cut(rest, "/")
		if i := strings.IndexByte(seg, ';'); i >= 0 {
			seg = seg[:i]
		}
		start := len(buf)
		buf = append(buf, '/')
		var ok bool
		if buf, ok = appendSegment(buf, seg); !ok {
			return "", false
		}
		s := buf[start+1:]
		if !more && len(s) == 0 { // a trailing '/', or the root
			if start == 0 {
				return "/", true
			}
			return string(buf[:start]), true
		}
		if len(s) == 0 || s[len(s)-1] == '.' {
			return "", false
		}
		if !more {
			return string(buf), true
		}
		rest = tail
	}
}

// appendSegment appends the normal form of one segment (parameters already stripped).
func appendSegment(buf []byte, seg string) ([]byte, bool) {
	start := len(buf)
	wide := false // some escape decodes to a byte >= 0x80
	for i := 0; i < len(seg); i++ {
		b := seg[i]
		if b != '%' {
			if !plainByte(b) {
				return buf, false
			}
			buf = append(buf, b)
			continue
		}
		if i+2 >= len(seg) {
			return buf, false
		}
		hi, ok1 := unhex(seg[i+1])
		lo, ok2 := unhex(seg[i+2])
		if !ok1 || !ok2 {
			return buf, false
		}
		i += 2
		v := hi<<4 | lo
		switch {
		case unreserved(v):
			buf = append(buf, v)
		case refusedEscape(v):
			return buf, false
		default:
			wide = wide || v >= 0x80
			buf = append(buf, '%', upperHex[v>>4], upperHex[v&15])
		}
	}
	if wide && !utf8.ValidString(decodeEscapes(string(buf[start:]))) {
		return buf, false
	}
	return buf, true
}

// refusedEscape reports whether an escape refuses the path: an encoded delimiter that a
// decoding upstream would read as structure ('/', '\\', ';', '?', '#'), a '%' (double
// encoding), NUL or another control byte.
func refusedEscape(v byte) bool {
	switch v {
	case '/', '\\', '%', ';', '?', '#', 0x7f:
		return true
	}
	return v < ' '
}

// decodeEscapes decodes the escapes of a segment in normal form (valid, upper-case).
func decodeEscapes(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			hi, _ := unhex(s[i+1])
			lo, _ := unhex(s[i+2])
			out = append(out, hi<<4|lo)
			i += 2
			continue
		}
		out = append(out, s[i])
	}
	return string(out)
}

const upperHex = "0123456789ABCDEF"

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// unreserved reports whether b is an RFC 3986 unreserved character.
func unreserved(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '-' || b == '.' || b == '_' || b == '~'
}

// IsRulePath reports whether p may be a configured path: absolute and already in normal
// form (one trailing '/' aside), without percent-encoding, so that some request path can
// match it.
func IsRulePath(p string) bool {
	return isNormal(routePath(p))
}

// routePath is the form a configured path is matched in: a trailing '/' is ignored, as
// it is in requests.
func routePath(p string) string {
	if len(p) > 1 && p[len(p)-1] == '/' {
		return p[:len(p)-1]
	}
	return p
}

// pathMatch is how a request path matches a rule.
type pathMatch uint8

const (
	noMatch   pathMatch = iota
	foldMatch           // matches only when case is ignored
	fullMatch           // matches as spelt
)

// matchPath matches a normal request path against the rule's path: exactly, or as a
// prefix followed by '/'. It reports a match that needs case to be ignored apart.
func (e *Endpoint) matchPath(p string) pathMatch {
	rp := e.route
	if len(p) < len(rp) {
		return noMatch
	}
	if len(p) > len(rp) && (!e.Prefix || (rp != "/" && p[len(rp)] != '/')) {
		return noMatch
	}
	head := p[:len(rp)]
	if head == rp {
		return fullMatch
	}
	if equalFoldASCII(head, rp) {
		return foldMatch
	}
	return noMatch
}

// equalFoldASCII compares ASCII strings ignoring case. Normal paths are ASCII (other
// bytes are escaped), so no Unicode folding (the Kelvin sign is not a 'k') applies.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// moreSpecific reports whether rule a is more specific than rule b: an exact path beats a
// prefix, a longer path a shorter one.
func moreSpecific(a, b *Endpoint) bool {
	if a.Prefix != b.Prefix {
		return !a.Prefix
	}
	return len(a.route) > len(b.route)
}

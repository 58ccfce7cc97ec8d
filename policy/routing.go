package policy

import (
	"strings"
)

// matchEndpoint finds the endpoint of a request: by the context_extensions slug when
// Envoy names one, else by path and method. It returns the endpoint and, when the request
// cannot be served by it, ENDPOINT_NOT_FOUND or INVALID_METHOD. Both ways see the path in
// its normal form and apply the same refusals (path.go). forged reports whether the client
// sent headers in Gatehouse's identity namespace, for allow to remove.
func (r *Rules) matchEndpoint(in *Input) (ep *Endpoint, code Code, forged bool) {
	h := r.scanHeaders(in)
	path, ok := normalizePath(in.Path)
	if !ok || h.rewritesPath {
		return nil, EndpointNotFound, h.forged
	}
	if slug, named := in.Ext[r.opt.EndpointKey]; named {
		ep, code = r.namedEndpoint(slug, path, h.method)
	} else {
		ep, code, _ = r.route(path, h.method)
	}
	if h.overrideRefused && ep != nil {
		code = InvalidMethod
	}
	return ep, code, h.forged
}

// namedEndpoint is the endpoint Envoy named, unless the path rules refuse the path (it
// matches a case-sensitive rule only when case is ignored) or give it to a more specific
// rule than the named endpoint's own path: one spelling, one rule, however the route that
// named the endpoint matched.
func (r *Rules) namedEndpoint(slug, path, method string) (*Endpoint, Code) {
	ep, ok := r.endpoints[slug]
	if !ok {
		return nil, EndpointNotFound
	}
	if len(r.routes) > 0 {
		claimed, _, refused := r.route(path, method)
		if refused || (ep.route != "" && claimed != nil && claimed != ep && moreSpecific(claimed, ep)) {
			return nil, EndpointNotFound
		}
	}
	if !ep.allows(method) {
		return ep, InvalidMethod
	}
	return ep, ""
}

// route matches a normal path against the path rules, most specific first. A rule that
// matches the path only when case is ignored ends the search: unless the rule (or the
// server) is case-insensitive, the path is refused (refused is true) rather than left to a
// looser rule, since many upstreams route case-insensitively. Likewise a method the most
// specific matching rule does not allow is INVALID_METHOD unless another rule for the same
// path allows it: a looser rule never takes it, as the upstream would serve it with the
// specific path's handler.
func (r *Rules) route(path, method string) (ep *Endpoint, code Code, refused bool) {
	var pathMatch *Endpoint
	for _, e := range r.routes {
		m := e.matchPath(path)
		if m == noMatch {
			continue
		}
		if pathMatch != nil && e.route != pathMatch.route {
			break // only another rule for the same path may take a method the first refused
		}
		if m == foldMatch {
			if r.spelledAlike(e, path) {
				continue // another rule, spelt in this case, takes it
			}
			if !e.CaseInsensitive && !r.opt.CaseInsensitivePaths {
				refused = true
				break
			}
		}
		if e.allows(method) {
			return e, "", false
		}
		if pathMatch == nil {
			pathMatch = e
		}
	}
	if pathMatch != nil {
		return pathMatch, InvalidMethod, refused
	}
	return nil, EndpointNotFound, refused
}

// spelledAlike reports whether another rule of the same shape as e, differing only in
// case, matches path as spelt.
func (r *Rules) spelledAlike(e *Endpoint, path string) bool {
	for _, o := range r.routes {
		if o != e && o.Prefix == e.Prefix && equalFoldASCII(o.route, e.route) && o.matchPath(path) == fullMatch {
			return true
		}
	}
	return false
}

// overrideHeaders are the method-override header names, and pathHeaders the headers that
// make some upstreams (Symfony, Laravel, IIS URL Rewrite) serve another path, in their
// canonical spelling.
var (
	overrideHeaders = [...]string{"x-http-method-override", "x-http-method", "x-method-override"}
	pathHeaders     = [...]string{"x-original-url", "x-rewrite-url"}
)

// headerScan is what the one pass over the request headers finds.
type headerScan struct {
	method          string // the method to judge the request as
	overrideRefused bool   // a method-override header refuses the request
	rewritesPath    bool   // a path-override header refuses the request
	forged          bool   // the client sent headers in Gatehouse's identity namespace
}

// scanHeaders is the one pass over the request headers that the pipeline makes. Header
// names match in any mix of case, '-' and '_' (CGI-style servers read them alike). Only
// OverrideFollow judges by the method-override headers, and only when every one of them
// names the same single token.
func (r *Rules) scanHeaders(in *Input) headerScan {
	h := headerScan{method: in.Method}
	named := ""
	for k, v := range in.Headers {
		if hasHeaderPrefix(k, r.idPrefix) {
			h.forged = true
			continue
		}
		if len(k) < len("x-http-method") || (k[0] != 'x' && k[0] != 'X') {
			continue
		}
		if oneOf(k, pathHeaders[:]) {
			h.rewritesPath = true
			continue
		}
		if h.overrideRefused || !oneOf(k, overrideHeaders[:]) {
			continue
		}
		v = strings.TrimSpace(v)
		if r.opt.MethodOverride != OverrideFollow || !isToken(v) || (named != "" && !strings.EqualFold(v, named)) {
			h.overrideRefused = true
			continue
		}
		named = v
	}
	if named != "" && !h.overrideRefused {
		h.method = strings.ToUpper(named)
	}
	return h
}

// oneOf reports whether header name k is one of the canonical names.
func oneOf(k string, names []string) bool {
	for _, n := range names {
		if sameHeaderName(k, n) {
			return true
		}
	}
	return false
}

// sameHeaderName compares a header name with a lower-case canonical one, ignoring ASCII
// case and treating '_' as '-'.
func sameHeaderName(k, canonical string) bool {
	return len(k) == len(canonical) && hasHeaderPrefix(k, canonical)
}

// hasHeaderPrefix reports whether header name k starts with the lower-case prefix,
// ignoring ASCII case and treating '_' as '-'.
func hasHeaderPrefix(k, prefix string) bool {
	if len(k) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := k[i]
		switch {
		case c == '_':
			c = '-'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// isToken reports whether s is one RFC 9110 token (a method name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

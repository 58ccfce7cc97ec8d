package policy

import (
	"net/netip"
	"strings"
)

// Input is one HTTP request as Envoy described it, in plain Go types.
type Input struct {
	Method string // upper-case HTTP method
	// Path is the request path without the query string, exactly as sent (not decoded
	// or normalised); RawPath is the full request target including the query.
	Path    string
	RawPath string
	Host    string
	// Headers holds the request headers with lower-case names. Envoy merges repeated
	// headers into one comma-separated value; the adapter does the same for raw header maps.
	Headers map[string]string
	// Ext holds Envoy's per-route context_extensions.
	Ext map[string]string
	// Body is the request body when Envoy sent it (with_request_body); HasBody says whether
	// it did. BodySize is the declared size, -1 when unknown. BodyPartial is set when Envoy
	// truncated the body (x-envoy-auth-partial-body: true).
	Body        string
	HasBody     bool
	BodySize    int64
	BodyPartial bool
	// Source is the downstream peer address as Envoy saw it (invalid for pipes).
	Source netip.Addr
	// RequestID is Envoy's x-request-id.
	RequestID string
}

// Header returns the value of a header by lower-case name.
func (in *Input) Header(name string) (string, bool) {
	v, ok := in.Headers[name]
	return v, ok
}

// singleValue returns a credential header's value. A credential that arrived more than
// once (merged by Envoy into a comma-separated value) is ambiguous: ok is false and
// present is true, so that the caller refuses it rather than picking one.
func (in *Input) singleValue(name string) (v string, present, ok bool) {
	v, present = in.Headers[name]
	if !present {
		return "", false, false
	}
	v = strings.TrimSpace(v)
	if v == "" || strings.IndexByte(v, ',') >= 0 {
		return "", true, false
	}
	return v, true, true
}

// ClientIP returns the client address: the Envoy source address, or, when the operator
// trusts hops proxies in front of Envoy, the address that many hops back in
// x-forwarded-for. A malformed or too short x-forwarded-for yields the source address.
func (in *Input) ClientIP(trustedHops int) netip.Addr {
	if trustedHops <= 0 {
		return in.Source
	}
	xff := in.Headers["x-forwarded-for"]
	if xff == "" {
		return in.Source
	}
	// Walk from the right: the last entry was appended by the nearest trusted proxy.
	for i := 0; i < trustedHops; i++ {
		j := strings.LastIndexByte(xff, ',')
		if i == trustedHops-1 {
			a, err := netip.ParseAddr(strings.TrimSpace(xff[j+1:]))
			if err != nil {
				return in.Source
			}
			return a.Unmap()
		}
		if j < 0 {
			return in.Source
		}
		xff = xff[:j]
	}
	return in.Source
}

// clientKey is the client address as lockouts and IP limits count it: an IPv4 address as
// it is, an IPv6 client by its /64, since a subscriber is given a whole /64 and can use any
// address in it (counting by address would let it rotate past any limit). IP lists still
// match the full address.
func clientKey(ip netip.Addr) string {
	ip = ip.Unmap()
	if ip.Is6() {
		return netip.PrefixFrom(ip.WithZone(""), 64).Masked().String()
	}
	return ip.String()
}

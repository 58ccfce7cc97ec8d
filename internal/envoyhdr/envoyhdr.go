// Package envoyhdr reads the header lists Envoy sends to ext_authz and ext_proc servers.
package envoyhdr

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// Merge builds a header map with lower-case names from Envoy's header list
// (ext_authz with encode_raw_headers, and every ext_proc message), merging repeated headers
// with commas as Envoy does for the plain map. Values come from raw_value (recent Envoy) or
// value (older ones).
func Merge(hs []*corev3.HeaderValue) map[string]string {
	m := make(map[string]string, len(hs))
	for _, hv := range hs {
		k := strings.ToLower(hv.GetKey())
		v := hv.GetValue()
		if raw := hv.GetRawValue(); len(raw) > 0 {
			v = string(raw)
		}
		if old, ok := m[k]; ok {
			v = old + "," + v
		}
		m[k] = v
	}
	return m
}

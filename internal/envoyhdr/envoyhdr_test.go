package envoyhdr

import (
	"maps"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// TestMerge: names lower-cased, raw_value preferred to value, repeated headers joined with
// ',' in their order (so a client's copy of a header cannot hide Envoy's).
func TestMerge(t *testing.T) {
	got := Merge([]*corev3.HeaderValue{
		{Key: ":Path", Value: "/v1/a"},
		{Key: "X-Nonce", RawValue: []byte("raw-1"), Value: "ignored"},
		{Key: "x-nonce", Value: "second"},
		{Key: "empty", Value: ""},
	})
	want := map[string]string{":path": "/v1/a", "x-nonce": "raw-1,second", "empty": ""}
	if !maps.Equal(got, want) {
		t.Fatalf("Merge = %v, want %v", got, want)
	}
	if m := Merge(nil); len(m) != 0 {
		t.Fatalf("Merge(nil) = %v", m)
	}
}

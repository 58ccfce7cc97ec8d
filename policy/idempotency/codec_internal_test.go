package idempotency

import "testing"

// FuzzDecodeResponse: a stored entry that is corrupt never panics and never reads past
// its end.
func FuzzDecodeResponse(f *testing.F) {
	s := &Settings{MaxBody: 64, Headers: []string{"a"}}
	f.Add(encodeEntry(make([]byte, 32), s, Response{Status: 200, Headers: [][2]string{{"a", "b"}}, Body: []byte("x")})[33:])
	f.Add([]byte{0, 200, 0, 1, 0, 5})
	f.Add([]byte{0, 200, 0, 1, 0, 1, 'a', 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, ok := decodeResponse(b)
		if ok && len(r.Body) > len(b) {
			t.Fatal("body longer than the entry")
		}
	})
}

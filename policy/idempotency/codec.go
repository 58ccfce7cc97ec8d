package idempotency

import (
	"encoding/binary"
	"strings"

	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// encodeEntry returns the completed entry of a request with fingerprint fp: its response
// r, with only s.Headers kept, or a "not stored" entry when r is too large to keep.
//
// Layout: kind, fingerprint, status (2 bytes), header count (2), each header as name
// length (2), name, value length (4), value, then the body to the end.
func encodeEntry(fp []byte, s *Settings, r Response) []byte {
	n := 1 + len(fp) + 4 + len(r.Body)
	kept := 0
	for _, h := range r.Headers {
		if keeps(s, h[0]) && len(h[0]) <= 0xffff {
			n += 6 + len(h[0]) + len(h[1])
			kept++
		}
	}
	if len(r.Body) > s.MaxBody || n > state.MaxRecordValue || r.Status < 100 || r.Status > 999 || kept > 0xffff {
		return append([]byte{kindNotStored}, fp...)
	}
	b := make([]byte, 0, n)
	b = append(b, kindStored)
	b = append(b, fp...)
	b = binary.BigEndian.AppendUint16(b, uint16(r.Status))
	b = binary.BigEndian.AppendUint16(b, uint16(kept))
	for _, h := range r.Headers {
		if !keeps(s, h[0]) || len(h[0]) > 0xffff {
			continue
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(h[0])))
		b = append(b, strings.ToLower(h[0])...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(h[1])))
		b = append(b, h[1]...)
	}
	return append(b, r.Body...)
}

// keeps reports whether header name is one s stores.
func keeps(s *Settings, name string) bool {
	for _, k := range s.Headers {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// decodeResponse reads what encodeEntry wrote after the fingerprint; ok is false for
// anything malformed.
func decodeResponse(b []byte) (Response, bool) {
	if len(b) < 4 {
		return Response{}, false
	}
	r := Response{Status: int(binary.BigEndian.Uint16(b))}
	n := int(binary.BigEndian.Uint16(b[2:]))
	b = b[4:]
	for range n {
		if len(b) < 2 {
			return Response{}, false
		}
		ln := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+ln+4 {
			return Response{}, false
		}
		name := string(b[2 : 2+ln])
		b = b[2+ln:]
		lv := int(binary.BigEndian.Uint32(b))
		if lv < 0 || len(b)-4 < lv {
			return Response{}, false
		}
		r.Headers = append(r.Headers, [2]string{name, string(b[4 : 4+lv])})
		b = b[4+lv:]
	}
	r.Body = b
	return r, true
}

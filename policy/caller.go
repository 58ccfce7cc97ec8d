package policy

import (
	"crypto/sha256"
	"encoding/hex"
)

// callerID is the opaque id of the caller the pipeline established: the hex SHA-256 of
// app, NUL, kind, NUL, id, where the kind is "user" (provider:sub of the user JWT), else
// "device" (the verified device id), else "license" (the hash of the presented license
// key); empty when none was established. The response phase scopes per-caller state
// (idempotency keys) by it, so that no identifier leaves Check in clear.
func callerID(app string, est established, device string) string {
	kind, id := "user", est.user
	switch {
	case id != "":
	case device != "":
		kind, id = "device", device
	case est.license != "":
		kind, id = "license", est.license
	default:
		return ""
	}
	h := sha256.New()
	var buf [256]byte
	b := append(buf[:0], app...)
	b = append(b, 0)
	b = append(b, kind...)
	b = append(b, 0)
	h.Write(b)
	h.Write([]byte(id))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}

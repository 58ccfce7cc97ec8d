package policy

import (
	"crypto/sha256"
	"encoding/hex"
)

// callerID is the opaque id of the caller the pipeline established: the hex SHA-256 of
// app, NUL, kind, NUL, id, where the kind is "user" (provider:sub of the user JWT), else
// "device" (the attested device id: never one the client only claims in a trusted
// device header, which anyone can set to another's), else "license" (the hash of the
// presented license key); empty when none was established. The response phase scopes per-caller state
// (idempotency keys) by it, so that no identifier leaves Check in clear.
func callerID(app string, est established, device string) string {
	kind, id := "user", est.sub
	switch {
	case id != "":
	case device != "":
		kind, id = "device", device
	case est.license != "":
		kind, id = "license", est.license
	default:
		return ""
	}
	var buf [512]byte // one allocation (the result) for ids of usual sizes
	b := append(buf[:0], app...)
	b = append(b, 0)
	b = append(b, kind...)
	b = append(b, 0)
	if kind == "user" {
		b = append(b, est.provider...)
		b = append(b, ':')
	}
	b = append(b, id...)
	sum := sha256.Sum256(b)
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], sum[:])
	return string(out[:])
}

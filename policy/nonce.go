package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/gatehouse/gatehouse/signature"
)

// NonceMarks records the nonces of signed endpoints, so that a nonce is used once
// within its replay window across every replica (state.Records satisfies it). Create
// stores val under key for ttl unless key holds a record, and reports created; it is
// atomic against concurrent calls, and an error means nothing is known.
type NonceMarks interface {
	Create(ctx context.Context, now time.Time, key string, val []byte, ttl time.Duration) (held []byte, created bool, err error)
}

// Client-facing messages of a refused nonce; they never echo the nonce.
const (
	msgNonceMissing = "Missing or invalid request nonce"
	msgNonceReused  = "Request nonce already used"
)

// signWith makes d a signed decision: its response, allow or deny, carries the echoed
// nonce and the signature. The nonce is kept only when valid (signature.ValidNonce).
func (d *Decision) signWith(s *signature.Signer, in *Input, now time.Time) {
	d.Signer, d.SignedAt = s, now
	if v, _, ok := in.singleValue(s.NonceHeader); ok && signature.ValidNonce(v) {
		d.Nonce = v
	}
}

// SignerOf returns the signer of an app's responses on ep: the endpoint's own, none
// when the endpoint opts out, else the app's.
func SignerOf(app *App, ep *Endpoint) *signature.Signer {
	switch {
	case ep != nil && ep.Sign != nil:
		return ep.Sign
	case ep != nil && ep.NoSign:
		return nil
	}
	return app.Sign
}

var nonceMark = []byte{1}

// nonce runs the nonce step of a signed endpoint: a request needs a valid nonce not
// seen for this app within the replay window. It reports whether the pipeline goes on.
func (r *Rules) nonce(ctx context.Context, now time.Time, app *App, d *Decision, fail FailMode) bool {
	if d.Nonce == "" {
		d.Message = msgNonceMissing
		d.deny(StepNonce, ValidationError)
		return false
	}
	if r.opt.Nonces == nil {
		return d.undecided(StepNonce, fail, "no record store for nonce replay marks")
	}
	_, created, err := r.opt.Nonces.Create(ctx, now, nonceKey(app.Name, d.Nonce), nonceMark, d.Signer.Window)
	if err != nil {
		return d.undecided(StepNonce, fail, "nonce replay store unavailable")
	}
	if !created {
		d.Message = msgNonceReused
		d.deny(StepNonce, ValidationError)
		return false
	}
	return true
}

// nonceKey is the record key of a nonce: the hex SHA-256 of app, NUL, nonce.
func nonceKey(app, nonce string) string {
	h := sha256.New()
	h.Write([]byte(app))
	h.Write([]byte{0})
	h.Write([]byte(nonce))
	var sum [sha256.Size]byte
	return "nonce:" + hex.EncodeToString(h.Sum(sum[:0]))
}

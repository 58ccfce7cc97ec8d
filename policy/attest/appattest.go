package attest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest/appattest"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// AppAttestSettings are the app_attest provider's: the app's enrolled keys and the
// header carrying the key id. The assertion is in the provider's Header; the request
// binding value in its BindingHeader.
type AppAttestSettings struct {
	Keys        *appattest.Keys
	KeyIDHeader string // default x-app-attest-key-id
}

// Default headers of the app_attest provider.
const (
	DefaultAppAttestKeyIDHeader   = "x-app-attest-key-id"
	DefaultAppAttestBindingHeader = "x-app-attest-binding"
)

// AppAttestKeys returns the enrolled keys of an app_attest provider (nil for other
// kinds), for the enrolment endpoint: Keys.Challenge issues a challenge, Keys.Enrol
// consumes it with an attestation object.
func (p *Provider) AppAttestKeys() *appattest.Keys {
	if p.c.AppAttest == nil {
		return nil
	}
	return p.c.AppAttest.Keys
}

// replayTTL is how long a verified assertion is remembered in the verdict cache: a
// replay of it within that time is refused by the counter without a second signature
// verification.
const replayTTL = time.Minute

// ClientDataHash is what an app_attest assertion must be signed over for a request:
// SHA-256 of the method, the request target as sent (path and query), and the value of
// the binding header (empty when absent), joined by "\n".
func ClientDataHash(method, target, binding string) [32]byte {
	var buf [1024]byte
	b := append(buf[:0], method...)
	b = append(b, '\n')
	b = append(b, target...)
	b = append(b, '\n')
	b = append(b, binding...)
	return sha256.Sum256(b)
}

// checkAppAttest verifies the assertion in tok for the key id in the key-id header,
// bound to in, and moves the key's counter. A verified assertion is cached (under the
// provider, key id, assertion and request binding) so that a replay costs a store round
// trip but no signature verification; the counter refuses it either way.
func (p *Provider) checkAppAttest(ctx context.Context, now time.Time, in *policy.Input, tok string, cache *policy.Cache) Outcome {
	s := p.c.AppAttest
	kid, present, ok := Credential(in, s.KeyIDHeader)
	if !present || !ok {
		return Outcome{Code: policy.InvalidAttestation, Message: "The App Attest key id header is missing, empty or repeated"}
	}
	keyID, err1 := decodeStd(kid, sha256.Size)
	assertion, err2 := decodeStd(tok, appattest.MaxAssertionBytes)
	if err1 != nil || err2 != nil {
		return Outcome{Code: policy.InvalidAttestation, Message: "The App Attest key id or assertion is not base64 of the expected size"}
	}
	binding := ""
	if p.c.BindingHeader != "" {
		if v, present, ok := Credential(in, p.c.BindingHeader); present {
			if !ok {
				return Outcome{Code: policy.InvalidAttestation, Message: "The App Attest binding header is empty or repeated"}
			}
			binding = v
		}
	}
	cdh := ClientDataHash(in.Method, in.RawPath, binding)
	key := policy.CacheKey("appattest", p.c.CacheID, string(keyID), string(cdh[:]), string(assertion))
	var n uint32
	var err error
	x, hit := cache.Get(key)
	if hit {
		err = s.Keys.Advance(ctx, now, keyID, x.(uint32))
	} else if n, err = p.assert(ctx, now, keyID, assertion, cdh[:]); err == nil {
		cache.Set(key, n, 8, replayTTL)
	}
	var refusal *appattest.Error
	switch {
	case errors.As(err, &refusal):
		return Outcome{Code: refusal.Code, Message: "App Attest: " + refusal.Msg, CacheHit: hit}
	case err != nil:
		return Outcome{Err: err, CacheHit: hit}
	}
	return Outcome{DeviceID: s.Keys.DeviceID(keyID), CacheHit: hit}
}

// assert is Keys.Assert in a span of its own.
func (p *Provider) assert(ctx context.Context, now time.Time, keyID, assertion, cdh []byte) (uint32, error) {
	ctx, span := tracer.Start(ctx, "gatehouse.attestation.verify",
		trace.WithAttributes(attribute.String("gatehouse.attestation.provider", p.id)))
	defer span.End()
	n, err := p.c.AppAttest.Keys.Assert(ctx, now, keyID, assertion, cdh)
	var refusal *appattest.Error
	if err != nil && !errors.As(err, &refusal) {
		span.SetStatus(otelcodes.Error, "attestation store unavailable")
	}
	return n, err
}

// decodeStd reads standard base64 (padded, as iOS encodes) of at most max bytes; when
// max is 32 it must be exactly 32.
func decodeStd(s string, max int) ([]byte, error) {
	if len(s) > base64.StdEncoding.EncodedLen(max) {
		return nil, errors.New("too long")
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) == 0 || (max == sha256.Size && len(b) != max) {
		return nil, errors.New("bad base64")
	}
	return b, nil
}

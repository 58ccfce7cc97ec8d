package attest

import (
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest/playintegrity"
)

// DefaultPlayIntegrityMaxAge is how old a Play Integrity token's timestampMillis may be
// when the provider sets no max_age.
const DefaultPlayIntegrityMaxAge = 5 * time.Minute

// PlayIntegrityConfig is a play_integrity provider's keys and what it accepts.
type PlayIntegrityConfig struct {
	Keys   playintegrity.Keys
	Policy playintegrity.Policy
}

// playIntegrity decrypts and verifies a Play Integrity token and turns its payload into
// facts, in the order of the failure mapping: malformed, not genuine (does not decrypt
// or verify, another app's package), then the verdicts, which judge applies after the
// binding and the clock. The token names no device: the device id stays empty. Its
// digest is its replay id: with a damper (config sets one), a token is accepted once.
func (p *Provider) playIntegrity(tok string) *facts {
	pi := p.c.PlayIntegrity
	pl, err := playintegrity.Decode(tok, pi.Keys)
	if err != nil {
		// The catalogue's message: the reason would help an attacker probe the verifier.
		return &facts{code: err.Code}
	}
	if g := pi.Policy.Genuine(pl); g.Code != "" {
		return &facts{code: g.Code, msg: g.Message}
	}
	if pl.RequestDetails.TimestampMillis == 0 {
		return &facts{code: policy.InvalidAttestation}
	}
	maxAge := p.c.MaxAge
	if maxAge <= 0 {
		maxAge = DefaultPlayIntegrityMaxAge
	}
	f := &facts{iat: time.UnixMilli(int64(pl.RequestDetails.TimestampMillis))}
	f.exp = f.iat.Add(maxAge)
	// The token names no id of its own: its digest is the replay damper's jti.
	id := policy.HashCredential(tok)
	f.jti = string(id[:])
	f.pay, f.hasPay = playintegrity.Binding(pl)
	v := pi.Policy.Verdict(pl)
	f.verdict, f.verdictMsg = v.Code, v.Message
	return f
}

// playIntegrityBound reports whether a Play Integrity token's requestHash (or classic
// nonce) is the binding value of this request: SHA-256 of its method, its request target
// and the binding header's value (empty when none is configured; present exactly once
// when one is), compared in constant time.
func (p *Provider) playIntegrityBound(in *policy.Input, f *facts) bool {
	if !f.hasPay {
		return false
	}
	value := ""
	if h := p.c.BindingHeader; h != "" {
		var ok bool
		if value, ok = single(in, h); !ok {
			return false
		}
	}
	target := in.RawPath
	if target == "" {
		target = in.Path
	}
	return playintegrity.SameBinding(playintegrity.RequestHash(in.Method, target, value), f.pay)
}

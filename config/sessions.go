package config

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest"
	"github.com/gatehouse/gatehouse/policy/attest/appattest"
	"github.com/gatehouse/gatehouse/policy/challenge"
	"github.com/gatehouse/gatehouse/policy/session"
)

// Sessions configures the sessions Gatehouse issues itself: the keys that sign them and
// their lifetimes. Endpoints serve them (serve: exchange, refresh, heartbeat, jwks,
// challenge) and apps accept them with an attestation provider of type session.
type Sessions struct {
	// Keys sign and verify session tokens: PKCS#8 PEM private keys (P-256 for ES256, or
	// Ed25519 for EdDSA), each with its key id. Every key verifies; ActiveKey signs.
	Keys []SessionKey `yaml:"keys"`
	// ActiveKey is the id of the key that signs new tokens (required).
	ActiveKey string `yaml:"active_key"`
	// TTL is a session token's lifetime (default 15m; 1m to 24h).
	TTL time.Duration `yaml:"ttl"`
	// RefreshTTL is a refresh token's and an idle session's lifetime (default 720h; at
	// least ttl, at most 8760h).
	RefreshTTL time.Duration `yaml:"refresh_ttl"`
	// RevocationCheck is how long a replica trusts its last look at the store for one
	// session: a revocation applies on every replica within it (default 5s; 0s to 5m).
	RevocationCheck time.Duration `yaml:"revocation_check"`
	// Header carries the session token on heartbeats (default x-session-token); it
	// should be the header of the apps' session providers.
	Header string `yaml:"header"`
	// RefreshHeader carries the refresh token when the body does not (default
	// x-refresh-token).
	RefreshHeader string `yaml:"refresh_header"`
	// ChallengeTTL is a one-time challenge's lifetime (default 5m; 1s to 1h).
	ChallengeTTL time.Duration `yaml:"challenge_ttl"`
}

// SessionKey is one session signing key.
type SessionKey struct {
	ID   string `yaml:"id"`
	File string `yaml:"file"`
}

// sessionRuntime holds what the session parts of one compile share.
type sessionRuntime struct {
	mgr           *session.Manager
	challenges    *challenge.Issuer
	header        string
	refreshHeader string
	enrol         map[string]*appattest.Keys // each app's App Attest keys, filled as apps compile
}

// sessions compiles the sessions section; nil when absent or broken (its errors added).
func (c *compiler) sessions(s *Sessions) *sessionRuntime {
	if s == nil {
		return nil
	}
	const p = "sessions"
	n0 := len(c.errs)
	c.durationIn(p+".ttl", s.TTL, time.Minute, 24*time.Hour)
	c.durationIn(p+".refresh_ttl", s.RefreshTTL, max(s.TTL, time.Minute), 8760*time.Hour)
	c.durationIn(p+".revocation_check", s.RevocationCheck, 0, 5*time.Minute)
	c.durationIn(p+".challenge_ttl", s.ChallengeTTL, challenge.MinTTL, challenge.MaxTTL)
	var keys []session.Key
	for i := range s.Keys {
		if k, ok := c.sessionKey(fmt.Sprintf("%s.keys[%d]", p, i), &s.Keys[i]); ok {
			keys = append(keys, k)
		}
	}
	if len(s.Keys) == 0 {
		c.add(p+".keys", "needs at least one key")
	}
	if len(c.errs) > n0 {
		return nil
	}
	ks, err := session.NewKeySet(keys, s.ActiveKey)
	if err != nil {
		c.add(p+".active_key", "%v", err)
		return nil
	}
	return c.sessionParts(s, ks)
}

// sessionKey reads one signing key. A key file absent under validate --offline (already a
// warning) stands in as a key made here, so that the rest is still checked.
func (c *compiler) sessionKey(path string, k *SessionKey) (session.Key, bool) {
	pem, ok := c.read(path+".file", k.File, "")
	switch {
	case !ok && k.File == "":
		c.add(path+".file", "is required")
		return session.Key{}, false
	case !ok && c.skipped[c.path(k.File)]:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			c.add(path+".file", "%v", err)
			return session.Key{}, false
		}
		key, err := session.NewKey(k.ID, priv)
		if err != nil {
			c.add(path, "%v", err)
		}
		return key, err == nil
	case !ok:
		c.add(path+".file", "cannot read the key")
		return session.Key{}, false
	}
	key, err := session.ParseKey(k.ID, []byte(pem))
	if err != nil {
		c.add(path, "%v", err) // the message names the key's shape, never its bytes
		return session.Key{}, false
	}
	return key, true
}

func (c *compiler) sessionParts(s *Sessions, ks *session.KeySet) *sessionRuntime {
	rec := c.records("sessions")
	rs := s.RevocationCheck
	if rs == 0 {
		rs = session.DefaultRevocationCheck
	}
	mgr, err := session.New(session.Settings{Keys: ks, Records: rec, TTL: s.TTL, RefreshTTL: s.RefreshTTL,
		RevocationCheck: rs, Cache: c.deps.Cache})
	if err != nil {
		c.add("sessions", "%v", err)
		return nil
	}
	ttl := s.ChallengeTTL
	if ttl == 0 {
		ttl = 5 * time.Minute
	}
	ch, err := challenge.New(rec, ttl, nil)
	if err != nil {
		c.add("sessions.challenge_ttl", "%v", err)
		return nil
	}
	return &sessionRuntime{mgr: mgr, challenges: ch, enrol: map[string]*appattest.Keys{},
		header:        c.header("sessions.header", s.Header, attest.Session.DefaultHeader()),
		refreshHeader: c.header("sessions.refresh_header", s.RefreshHeader, "x-refresh-token")}
}

func (c *compiler) durationIn(path string, d, lo, hi time.Duration) {
	if d != 0 && (d < lo || d > hi) {
		c.add(path, "must be between %v and %v", lo, hi)
	}
}

// serve compiles an endpoint's serve key.
func (c *compiler) serve(path string, e *Endpoint, ep *policy.Endpoint) {
	if e.Serve == "" {
		return
	}
	kind, ok := session.ParseKind(e.Serve)
	switch {
	case !ok:
		c.add(path+".serve", "unknown %q (want exchange, refresh, heartbeat, jwks or challenge)", e.Serve)
		return
	case c.sess == nil:
		c.add(path+".serve", "needs the sessions section")
		return
	case len(e.Inject) > 0:
		c.add(path+".inject", "a served endpoint has no upstream to inject into")
	}
	if e.Attestation == "" {
		switch kind {
		case session.Exchange:
			ep.Attestation = policy.AttestOptional // any one proof; the exchange checks there is one
		case session.Heartbeat:
			ep.Attestation = policy.AttestRequire // the session token, through the app's session provider
		case session.Refresh, session.JWKS, session.Challenge:
			ep.Attestation = policy.AttestExempt
		}
	}
	if kind == session.Heartbeat {
		ep.Heartbeat = true // an invalid or expired session is session_expired (002)
	}
	ep.Serve = &session.Endpoint{Kind: kind, Sessions: c.sess.mgr, Header: c.sess.header,
		RefreshHeader: c.sess.refreshHeader, Challenges: c.sess.challenges, Enrol: c.sess.enrol}
}

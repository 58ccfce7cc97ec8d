// Package session issues and verifies the sessions Gatehouse serves itself (DESIGN
// section 9): a device proves itself once at the exchange endpoint (any attestation
// provider of its app, or a license key with its device id) and gets a short-lived
// session token signed by Gatehouse, plus a one-time refresh token. Later requests carry
// the session token, which is verified locally with Gatehouse's own keys and cached, so
// they pay no attestation cost.
//
// State lives in the shared store ([state.Records]), so that every replica agrees:
//
//	sess:s:<sid>       the session (its app, device and license), until its refresh lifetime ends
//	sess:r:<sid>       the session was revoked
//	sess:rd:<digest>   the revocation generation of a device (of an app)
//	sess:rl:<digest>   the revocation generation of a license
//
// A session records the generations of its device and license when it begins; a revocation
// writes a new one, so that every session begun before it (under another generation) is
// revoked and none begun after, by the order of the writes in the store, whatever the
// replicas' clocks say.
//
//	sess:rt:<digest>   a refresh token (digest of the token), taken once
//
// A request's session is checked against the store at most once per revocation-check
// interval per replica (the verdict cache keeps the answer that long): a revocation
// applies on every replica within that bound. Heartbeats and refreshes always check the
// store.
package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// Defaults of [Settings].
const (
	DefaultTTL             = 15 * time.Minute
	DefaultRefreshTTL      = 30 * 24 * time.Hour
	DefaultRevocationCheck = 5 * time.Second
	DefaultIssuer          = "gatehouse"
)

// Settings configure a Manager.
type Settings struct {
	Keys    *KeySet
	Records state.Records
	// TTL is a session token's lifetime; RefreshTTL a refresh token's and a session's
	// (each refresh or heartbeat extends the session by RefreshTTL).
	TTL, RefreshTTL time.Duration
	// RevocationCheck is how long a replica trusts its last look at the store for one
	// session: the bound within which a revocation applies everywhere.
	RevocationCheck time.Duration
	Issuer          string // iss of the tokens
	// Cache is the verdict cache (signatures and store looks); nil: none, every request
	// checks the store.
	Cache *policy.Cache
}

// Manager issues, refreshes, verifies and revokes sessions. Immutable; safe for
// concurrent use.
type Manager struct {
	s Settings
}

// New returns a Manager over s, filling defaults.
func New(s Settings) (*Manager, error) {
	if s.Keys == nil || s.Records == nil {
		return nil, errors.New("session: keys and a records store are required")
	}
	if s.TTL <= 0 {
		s.TTL = DefaultTTL
	}
	if s.RefreshTTL <= 0 {
		s.RefreshTTL = DefaultRefreshTTL
	}
	if s.RevocationCheck <= 0 {
		s.RevocationCheck = DefaultRevocationCheck
	}
	if s.Issuer == "" {
		s.Issuer = DefaultIssuer
	}
	return &Manager{s: s}, nil
}

// Keys returns the key set (for the JWKS).
func (m *Manager) Keys() *KeySet { return m.s.Keys }

// TTL returns a session token's lifetime.
func (m *Manager) TTL() time.Duration { return m.s.TTL }

// grant is what a session was granted at the exchange: stored with the session and with
// each of its refresh tokens.
type grant struct {
	SID      string   `json:"sid"`
	App      string   `json:"app"`
	Device   string   `json:"dev"`
	License  string   `json:"lic,omitempty"`
	Provider string   `json:"prv,omitempty"`
	Verdicts []string `json:"vrd,omitempty"`
	Started  int64    `json:"ath"`          // unix nanoseconds
	DevGen   string   `json:"dg,omitempty"` // the device's revocation generation at the start
	LicGen   string   `json:"lg,omitempty"` // the license's
}

// Tokens are an issued session: the session token, and a refresh token unless the
// session was only extended (heartbeat).
type Tokens struct {
	SessionID string
	Session   string
	Refresh   string
	Expires   time.Time
}

// Grant is what an exchange verified about a device.
type Grant struct {
	App, DeviceID, License, Provider string
	Verdicts                         []string
}

// Start begins a session for g: a new session id, its record, a session token and a
// refresh token.
func (m *Manager) Start(ctx context.Context, now time.Time, g Grant) (Tokens, error) {
	gr := grant{SID: rand.Text(), App: g.App, Device: g.DeviceID, License: g.License, Provider: g.Provider,
		Verdicts: g.Verdicts, Started: now.UnixNano()}
	var err error
	if gr.DevGen, gr.LicGen, err = m.generations(ctx, now, g.App, g.DeviceID, g.License); err != nil {
		return Tokens{}, err
	}
	b, _ := json.Marshal(gr)
	if _, created, err := m.s.Records.Create(ctx, now, sessionKey(gr.SID), b, m.s.RefreshTTL); err != nil || !created {
		return Tokens{}, fmt.Errorf("session store: %w", errOr(err, "session id taken"))
	}
	return m.issue(ctx, now, &gr, true)
}

// generations reads the current revocation generations of a device and a license ("":
// never revoked, or the revocation expired).
func (m *Manager) generations(ctx context.Context, now time.Time, app, dev, lic string) (string, string, error) {
	d, _, err := m.s.Records.Get(ctx, now, deviceKey(app, dev))
	if err != nil || lic == "" {
		return string(d), "", storeErr(err)
	}
	l, _, err := m.s.Records.Get(ctx, now, licenseKey(lic))
	return string(d), string(l), storeErr(err)
}

// issue signs a session token for gr and, with refresh, stores a new refresh token.
func (m *Manager) issue(ctx context.Context, now time.Time, gr *grant, refresh bool) (Tokens, error) {
	now = now.Truncate(time.Second) // a token's times are whole seconds
	t := Tokens{SessionID: gr.SID, Expires: now.Add(m.s.TTL)}
	var err error
	t.Session, err = m.s.Keys.Sign(m.s.Issuer, &Claims{SessionID: gr.SID, App: gr.App, DeviceID: gr.Device,
		License: gr.License, Provider: gr.Provider, Verdicts: gr.Verdicts, Started: time.Unix(0, gr.Started),
		IssuedAt: now, Expires: t.Expires})
	if err != nil {
		return Tokens{}, fmt.Errorf("session signing: %w", err)
	}
	if !refresh {
		return t, nil
	}
	t.Refresh = rand.Text() + rand.Text() // 256 bits
	b, _ := json.Marshal(gr)
	if _, created, err := m.s.Records.Create(ctx, now, refreshKey(t.Refresh), b, m.s.RefreshTTL); err != nil || !created {
		return Tokens{}, fmt.Errorf("session store: %w", errOr(err, "refresh token taken"))
	}
	return t, nil
}

func errOr(err error, msg string) error {
	if err != nil {
		return err
	}
	return errors.New(msg)
}

func sessionKey(sid string) string { return "sess:s:" + digest(sid) }
func revokedKey(sid string) string { return "sess:r:" + digest(sid) }
func refreshKey(tok string) string { return "sess:rt:" + digest(tok) }
func deviceKey(app, dev string) string {
	return "sess:rd:" + digest(app+"\x00"+dev)
}
func licenseKey(lic string) string { return "sess:rl:" + digest(lic) }

// digest keeps identifiers and tokens out of store keys in clear.
func digest(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// VerifySession implements attest.SessionVerifier: it checks a session token presented on
// a request of app. The signature is checked once per token (cached); the clock on every
// request; the store at most once per RevocationCheck per token and replica (the answer
// is kept with the cached token).
func (m *Manager) VerifySession(ctx context.Context, now time.Time, app, tok string) attest.Outcome {
	v, hit := m.verified(now, tok)
	if code := m.judge(now, app, v); code != "" {
		return attest.Outcome{Code: code, CacheHit: hit}
	}
	c := &v.claims
	if s := v.state.Load(); s != nil && now.Before(s.until) {
		return outcome(c, s.code, hit)
	}
	code, _, err := m.lookStore(ctx, now, c.SessionID, app, c.DeviceID, c.License)
	if err != nil {
		return attest.Outcome{Err: err, Claimed: c.DeviceID}
	}
	v.state.Store(&look{code: code, until: now.Add(m.s.RevocationCheck)})
	return outcome(c, code, hit)
}

func outcome(c *Claims, code policy.Code, hit bool) attest.Outcome {
	if code != "" {
		return attest.Outcome{Code: code, CacheHit: hit}
	}
	return attest.Outcome{DeviceID: c.DeviceID, License: c.License, CacheHit: hit}
}

// verified returns what the token's signature establishes, from the cache when it can.
func (m *Manager) verified(now time.Time, tok string) (*verified, bool) {
	key := policy.CacheKey("session", m.s.Keys.digest, m.s.Issuer, tok)
	if x, ok := m.s.Cache.Get(key); ok {
		return x.(*verified), true
	}
	v := m.s.Keys.verify(m.s.Issuer, tok)
	ttl := attest.FailureTTL
	if v.code == "" {
		ttl = v.claims.Expires.Sub(now)
	}
	m.s.Cache.Set(key, v, int64(len(tok)+256), ttl)
	return v, false
}

// judge applies what depends on the request and the clock: the app, and expiry (a token
// is expired at exactly its exp).
func (m *Manager) judge(now time.Time, app string, v *verified) policy.Code {
	switch {
	case v.code != "":
		return v.code
	case v.claims.App != app:
		return policy.InvalidToken
	case !now.Before(v.claims.Expires):
		return policy.SessionExpired
	}
	return ""
}

// lookStore asks the store about a session: revoked (itself, or its device or license
// since it began), unknown, or live (code ""); live returns the session's record.
func (m *Manager) lookStore(ctx context.Context, now time.Time, sid, app, dev, lic string) (policy.Code, []byte, error) {
	if _, ok, err := m.s.Records.Get(ctx, now, revokedKey(sid)); err != nil || ok {
		return policy.SessionRevoked, nil, storeErr(err)
	}
	rec, ok, err := m.s.Records.Get(ctx, now, sessionKey(sid))
	var gr grant
	if err != nil || !ok || json.Unmarshal(rec, &gr) != nil {
		return policy.SessionNotFound, nil, storeErr(err)
	}
	var keys [2]string // a session without a device id is revoked by its id or its license
	if dev != "" {
		keys[0] = deviceKey(app, dev)
	}
	gens := [2]string{gr.DevGen, gr.LicGen}
	if lic != "" {
		keys[1] = licenseKey(lic)
	}
	for i, k := range keys {
		if k == "" {
			continue
		}
		cur, ok, err := m.s.Records.Get(ctx, now, k)
		if err != nil {
			return "", nil, storeErr(err)
		}
		if ok && string(cur) != gens[i] {
			return policy.SessionRevoked, nil, nil
		}
	}
	return "", rec, nil
}

func storeErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("session store: %w", err)
}

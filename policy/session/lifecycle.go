package session

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"time"

	"github.com/gatehouse/gatehouse/policy"
)

// refreshTokenLen is the length of a refresh token: two crypto/rand.Text values.
const refreshTokenLen = 52

// Refresh exchanges a refresh token of app for a new session token and a new refresh
// token. The refresh token is taken from the store, so it works once, on any replica:
// reused, expired, unknown, another app's, or its session revoked or gone →
// REFRESH_TOKEN_INVALID.
func (m *Manager) Refresh(ctx context.Context, now time.Time, app, refresh string) (Tokens, policy.Code, error) {
	if !wellFormed(refresh) {
		return Tokens{}, policy.RefreshTokenInvalid, nil
	}
	b, ok, err := m.s.Records.Take(ctx, now, refreshKey(refresh))
	if err != nil {
		return Tokens{}, "", storeErr(err)
	}
	var gr grant
	if !ok || json.Unmarshal(b, &gr) != nil || gr.App != app {
		return Tokens{}, policy.RefreshTokenInvalid, nil
	}
	if code, err := m.extend(ctx, now, &gr); err != nil || code != "" {
		if code != "" {
			code = policy.RefreshTokenInvalid
		}
		return Tokens{}, code, err
	}
	t, err := m.issue(ctx, now, &gr, true)
	return t, "", err
}

// Heartbeat extends the session of a session token of app: a new session token for the
// same session, after a fresh look at the store (a revocation applies at once here).
func (m *Manager) Heartbeat(ctx context.Context, now time.Time, app, tok string) (Tokens, policy.Code, error) {
	return m.HeartbeatOf(ctx, now, app, "", tok)
}

// HeartbeatOf is Heartbeat for a request whose device steps verified device (""
// when none ran): a token of another device's session is INVALID_TOKEN, since that
// device's own checks (block list, license state, device header) never ran.
func (m *Manager) HeartbeatOf(ctx context.Context, now time.Time, app, device, tok string) (Tokens, policy.Code, error) {
	v, _ := m.verified(now, tok)
	if code := m.judge(now, app, v); code != "" {
		return Tokens{}, code, nil
	}
	if device != "" && device != v.claims.DeviceID {
		return Tokens{}, policy.InvalidToken, nil
	}
	c := &v.claims
	gr := grant{SID: c.SessionID, App: c.App, Device: c.DeviceID, License: c.License, Provider: c.Provider,
		Verdicts: c.Verdicts, Started: c.Started.UnixNano()}
	if code, err := m.extend(ctx, now, &gr); err != nil || code != "" {
		return Tokens{}, code, err
	}
	t, err := m.issue(ctx, now, &gr, false)
	return t, "", err
}

// extend looks the session up in the store and, when it is live, extends its record by
// RefreshTTL; gr takes the session's start and generations from the record.
func (m *Manager) extend(ctx context.Context, now time.Time, gr *grant) (policy.Code, error) {
	code, rec, err := m.lookStore(ctx, now, gr.SID, gr.App, gr.Device, gr.License)
	if err != nil || code != "" {
		return code, err
	}
	var stored grant
	if json.Unmarshal(rec, &stored) == nil {
		gr.Started, gr.DevGen, gr.LicGen = stored.Started, stored.DevGen, stored.LicGen
	}
	if _, err := m.s.Records.Swap(ctx, now, sessionKey(gr.SID), rec, rec, m.s.RefreshTTL); err != nil {
		return "", storeErr(err)
	}
	return "", nil
}

func wellFormed(tok string) bool {
	if len(tok) != refreshTokenLen {
		return false
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// Target names what to revoke: one session (SessionID), every session of a device of an
// app (App and DeviceID), or every session of a license (License, the key's hex SHA-256).
type Target struct {
	SessionID     string
	App, DeviceID string
	License       string
}

// ErrTarget is returned by Revoke for a target that names nothing or more than one kind.
var ErrTarget = errors.New("name one session_id, one app with its device_id, or one license_sha256")

// Revoke revokes a target from now on: its sessions are refused (SESSION_REVOKED), and
// their refresh tokens too. Sessions a device or license begins later are not affected.
func (m *Manager) Revoke(ctx context.Context, now time.Time, t Target) error {
	ttl := m.s.RefreshTTL + m.s.TTL // outlives every session begun before now
	switch {
	case t.SessionID != "" && t.App == "" && t.DeviceID == "" && t.License == "":
		_, _, err := m.s.Records.Create(ctx, now, revokedKey(t.SessionID), []byte("1"), ttl)
		return storeErr(err)
	case t.SessionID == "" && t.App != "" && t.DeviceID != "" && t.License == "":
		return m.newGeneration(ctx, now, deviceKey(t.App, t.DeviceID), ttl)
	case t.SessionID == "" && t.App == "" && t.DeviceID == "" && t.License != "":
		return m.newGeneration(ctx, now, licenseKey(t.License), ttl)
	}
	return ErrTarget
}

// newGeneration writes a new revocation generation under key: every session begun under
// another one is revoked from now on.
func (m *Manager) newGeneration(ctx context.Context, now time.Time, key string, ttl time.Duration) error {
	val := []byte(rand.Text())
	held, created, err := m.s.Records.Create(ctx, now, key, val, ttl)
	if err != nil || created {
		return storeErr(err)
	}
	// Not swapped: a concurrent revocation wrote a generation of its own, which no
	// session begun before this call holds either.
	_, err = m.s.Records.Swap(ctx, now, key, held, val, ttl)
	return storeErr(err)
}
